"""The course notebooks: committed clean, one literal parameters cell each, links that resolve, fast-forward runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from longmab_utils.course import reproduce
from longmab_utils.data import read_json
from longmab_utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LINK = re.compile(r"\]\(([^)\s]+)\)")
MENTIONED = re.compile(r"(?<![\w/.:-])((?:[\w-]+/)*[\w-]+\.(?:md|cff|py|txt))\b")


def test_the_course_is_every_numbered_notebook():
    assert [p.stem for p in NOTEBOOKS] == [*reproduce.COURSE, *reproduce.ABLATIONS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs_or_run_state(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert "widgets" not in notebook.metadata and "papermill" not in notebook.metadata
    for cell in notebook.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs (make strip)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_first_after_colab_and_holds_commented_literals(path):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    first = 1 if "colab" in code[0].metadata.get("tags", []) else 0
    assert code[first] is tagged[0]
    names = set()
    for line in tagged[0].source.splitlines():
        statement = ast.parse(line).body[0]
        assert isinstance(statement, ast.Assign) and "  # " in line, f"{path.name}: {line!r}"
        ast.literal_eval(statement.value)
        names.add(statement.targets[0].id)
    assert {"profile", "run_dir", "seed", "overrides", "solutions"} <= names
    if path.stem >= "03":
        assert "fast_forward" in names
    assert set(pm.inspect_notebook(str(path))) == names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_asks_for_nothing_interactive_and_ends_with_deviations_exercises_and_next(path):
    notebook = nbformat.read(path, as_version=4)
    source = "\n".join(c.source for c in notebook.cells)
    assert not re.search(r"\b(input|getpass|login|notebook_login)\(", source)
    assert "trust_remote_code=True" not in source
    headings = [c.source.splitlines()[0] for c in notebook.cells if c.cell_type == "markdown" and c.source]
    assert "## What we deviated from, and why" in headings and "## Exercises" in headings
    assert headings.index("## What we deviated from, and why") < headings.index("## Exercises")
    start = next(i for i, c in enumerate(notebook.cells) if c.source.startswith("## Exercises"))
    checks = [c for c in notebook.cells[start:] if c.cell_type == "code" and "exercises.check(" in c.source]
    assert len(checks) >= 3, f"{path.name}: at least three checked exercises"
    asks = [c.source for c in notebook.cells[start:] if c.cell_type == "markdown" and c.source.startswith("**")]
    assert sum("Change a setting and predict" in text for text in asks) == 1, f"{path.name}: one change-and-predict"
    last = notebook.cells[-1]
    assert last.cell_type == "markdown" and last.source.startswith("## Next")


DOCS = sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize(
    "path",
    [ROOT / "README.md", ROOT / "METHOD.md", ROOT / "data" / "README.md", *DOCS, *NOTEBOOKS],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_relative_links_resolve(path):
    if path.suffix == ".ipynb":
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    else:
        text = path.read_text()
    for target in LINK.findall(text):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        assert (path.parent / target.split("#")[0]).exists(), f"{path.name}: broken link {target}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_files_a_notebook_names_exist_in_the_repository(path):
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    for name in set(MENTIONED.findall(text)):
        assert (ROOT / name).exists() or (path.parent / name).exists(), f"{path.name} names {name}, which is missing"


def test_jupyterlab_opens_with_the_kit_interpreter_as_kernel():
    from jupyter_client.kernelspec import KernelSpecManager

    version = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert int(version.split(".")[0]) >= 4
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] in ("python", sys.executable) and Path(spec.resource_dir).is_relative_to(sys.prefix)


def test_plan_restarts_from_a_numbered_notebook(tmp_path):
    steps = reproduce.plan(tmp_path, "3")
    assert [s.name for s in steps] == list(reproduce.COURSE[2:])
    assert steps[0].executed == tmp_path / "executed" / "03_rollout.ipynb"
    with pytest.raises(UserError, match="no such notebook"):
        reproduce.plan(tmp_path, "09")


def test_python3_kernel_runs_this_interpreter():
    reproduce.check_kernel()


def test_a_failing_cell_is_reported_with_notebook_cell_and_executed_copy(tmp_path, monkeypatch):
    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    notebook.cells = [
        nbformat.v4.new_code_cell("x = 1  # a parameter", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise ValueError('boom')"),
    ]
    source = tmp_path / "99_broken.ipynb"
    nbformat.write(notebook, source)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    step = reproduce.Step("99_broken", source, tmp_path / "out" / "99_broken.ipynb")
    with pytest.raises(reproduce.NotebookFailed) as failure:
        reproduce.execute(step, {"x": 2}, cell_timeout=120)
    message = str(failure.value)
    assert "99_broken" in message and "ValueError: boom" in message and str(step.executed) in message
    assert step.executed.exists()


@pytest.mark.models
@pytest.mark.parametrize("name", ["04_preference_pairs", "06_evaluation"])
def test_a_later_notebook_runs_first_on_an_empty_run_folder_with_fast_forward(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    run_dir = tmp_path / "run"
    step = reproduce.Step(name, ROOT / "notebooks" / f"{name}.ipynb", tmp_path / f"{name}.ipynb")
    parameters = {"profile": "smoke", "run_dir": str(run_dir), "fast_forward": True, "solutions": True}
    reproduce.execute(step, parameters, cell_timeout=600)
    outputs = "\n".join(
        o.get("text", "") for c in nbformat.read(step.executed, as_version=4).cells for o in c.get("outputs", [])
    )
    assert "fast_forward: copied" in outputs
    written = {"04_preference_pairs": "pairs.jsonl", "06_evaluation": "metrics.json"}[name]
    assert (run_dir / written).exists() and read_json(run_dir / "settings.json")["rollout"]["settings"]["rounds"] == 6


def solution_arguments(source: str) -> list[ast.expr]:
    """The `solution=` argument of every `exercises.check(...)` call in a cell."""
    return [
        keyword.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "exercises.check"
        for keyword in node.keywords
        if keyword.arg == "solution"
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_worked_answer_lives_in_the_package_not_in_the_learners_cell(path):
    notebook = nbformat.read(path, as_version=4)
    cells = [c.source for c in notebook.cells if c.cell_type == "code" and "exercises.check(" in c.source]
    solutions = [argument for source in cells for argument in solution_arguments(source)]
    assert len(solutions) == len(cells), f"{path.name}: every exercise has a worked answer"
    for argument in solutions:
        called = argument.body if isinstance(argument, ast.Lambda) else argument
        target = called.func if isinstance(called, ast.Call) else called
        assert ast.unparse(target).startswith("worked."), f"{path.name}: {ast.unparse(argument)}"


CITATION = re.compile(r"notebook (\d\d)(?:'s|,)\s+(?:#\s*)?equation\s+(?:#\s*)?\((\d+)\)")
"""How the package cites a notebook's numbered equation: "notebook 02, equation (2)" or "notebook 02's equation (2)"."""


def test_equations_are_numbered_in_order_and_every_citation_in_the_code_exists():
    tags = {}
    for path in NOTEBOOKS:
        markdown = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        numbers = [int(n) for n in re.findall(r"\\tag\{(\d+)\}", markdown)]
        assert numbers == list(range(1, len(numbers) + 1)), f"{path.name}: equations numbered 1, 2, ... in order"
        tags[path.stem[:2]] = set(numbers)
    cited = {
        (notebook, int(number))
        for module in (ROOT / "longmab_utils").rglob("*.py")
        for notebook, number in CITATION.findall(module.read_text())
    }
    assert cited and all(number in tags[notebook] for notebook, number in cited), sorted(cited)
    assert {notebook for notebook, _ in cited} == set(tags), "every notebook has an equation the code cites"

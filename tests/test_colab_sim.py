"""The course on Colab's runtime (`make colab-sim`): run in the kit copy of the venv tests/colab_sim.py built."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.colab

VENV = Path(sys.prefix)
ROOT = Path(__file__).resolve().parents[1]
MODELS = "bundled-models.txt"


def freeze_version(name: str) -> str:
    """The freeze's version of `name` (without a local part), from the constraints the build wrote."""
    lines = (VENV / "colab-constraints.txt").read_text().splitlines()
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines}[name]


def recorded(name: str) -> set[str]:
    """The lines of a `pip check` the build recorded, less the bundled models' dependencies, which the set-up leaves
    out on purpose (constraints/bundled-models.txt says why)."""
    models = [line for line in (ROOT / "constraints" / MODELS).read_text().splitlines() if line[:1].isalpha()]
    lines = (VENV / name).read_text().splitlines()
    return {line for line in lines if not (line.split()[0] in models and line.endswith("which is not installed."))}


def test_this_is_the_kit_copy_in_colabs_runtime():
    from longmab_utils.course import colab

    assert ROOT == VENV / "content" / "kit" and Path(colab.__file__).is_relative_to(ROOT)
    assert sys.version_info[:2] == (3, 13)


@pytest.mark.parametrize("name", ["torch", "numpy", "pandas", "matplotlib", "pydantic", "ipykernel", "ipython"])
def test_the_set_up_left_colabs_own_packages_as_colab_ships_them(name):
    assert version(name).split("+")[0] == freeze_version(name)


def test_the_set_up_adds_no_pip_check_conflict():
    assert sorted(recorded("pip-check-after.txt") - recorded("pip-check-before.txt")) == []


def test_the_set_up_installed_bitsandbytes_and_a_torchao_and_hub_that_peft_and_gradio_accept():
    from packaging.version import Version
    from peft.import_utils import is_torchao_available

    assert version("bitsandbytes") == "0.50.2" and is_torchao_available()
    assert Version(version("huggingface_hub")) < Version("2")


def test_the_smoke_course_01_to_07_runs(tmp_path, monkeypatch):
    from longmab_utils.course import reproduce

    monkeypatch.setenv("TQDM_DISABLE", "1")
    notebooks = reproduce.COURSE + reproduce.ABLATIONS
    manifest = reproduce.reproduce("smoke", {}, tmp_path / "run", notebooks=notebooks)  # the profile's cell timeout
    assert manifest["status"] == "complete" and list(manifest["notebook_seconds"]) == list(notebooks)


@pytest.mark.parametrize("name", ["05_qlora_dpo", "06_evaluation"])
def test_a_notebook_opened_alone_runs_with_fast_forward(name, tmp_path, monkeypatch):
    from longmab_utils.config import PROFILES
    from longmab_utils.course import reproduce

    monkeypatch.setenv("TQDM_DISABLE", "1")
    step = reproduce.Step(name, ROOT / "notebooks" / f"{name}.ipynb", tmp_path / f"{name}.ipynb")
    parameters = {"profile": "smoke", "run_dir": str(tmp_path / "run"), "fast_forward": True, "solutions": True}
    if name == "05_qlora_dpo":  # 5 steps on the shipped 18 pairs run every check; test_dpo covers the reference pass
        parameters["overrides"] = {"dpo.epochs": 0.25, "dpo.precompute_ref": False}
    reproduce.execute(step, parameters, PROFILES["smoke"].cell_timeout)
    cells = nbformat.read(step.executed, as_version=4).cells
    assert any("fast_forward: copied" in o.get("text", "") for c in cells for o in c.get("outputs", []))

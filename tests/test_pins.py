"""The pin files agree: cuda.txt with its packages' own requirements, colab.txt with cuda.txt, pyproject with both."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from longmab_utils.course import colab
from longmab_utils.course.colab import pinned_names

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import pins  # noqa: E402
from pins import (  # noqa: E402
    TARGET_PYTHONS,
    PinError,
    check,
    check_files,
    marker_environment,
    overlay,
    project_requirements,
    read_pins,
    report_is_current,
)

ROOT = Path(__file__).resolve().parents[1]
CUDA = ROOT / "constraints" / "cuda.txt"
REPORT = ROOT / "constraints" / "cuda.metadata.json"
COLAB = ROOT / "constraints" / "colab.txt"
# What Colab ships and runs on (the set-up keeps it at Colab's versions), and vLLM, which Colab does not need.
COLAB_OWNED = colab.COLAB_OWNED | {"vllm"}


def metadata(python):
    return json.loads(REPORT.read_text())["pythons"][python]


def test_the_report_was_made_from_cuda_txt_as_it_is():
    assert report_is_current(CUDA, REPORT), "constraints/cuda.txt changed: run `make pins` and commit the report"
    for python in TARGET_PYTHONS:
        recorded = {name: record["version"] for name, record in metadata(python).items()}
        assert recorded == read_pins(CUDA)


def test_cuda_pins_accept_each_other_and_python_3_11_and_3_12():
    assert check_files(CUDA, REPORT, ROOT / "pyproject.toml") == []


@pytest.mark.parametrize("python", TARGET_PYTHONS)
def test_a_pin_that_contradicts_vllm_is_reported(python):
    pins = {**read_pins(CUDA), "torch": "2.13.0"}
    records = {**metadata(python), "torch": {**metadata(python)["torch"], "version": "2.13.0"}}
    problems = check(pins, records, python)
    assert "vllm 0.33.0 requires torch==2.14.0, pinned 2.13.0" in problems
    assert any(p.startswith("torchvision 0.29.0 requires torch==2.14.0") for p in problems)


def test_markers_decide_which_requirements_apply_to_which_python():
    records = {
        "a": {"version": "1.0", "requires_python": ">=3.12", "requires_dist": []},
        "b": {
            "version": "2.0",
            "requires_python": "",
            "requires_dist": [
                'a<1; python_version < "3.12"',
                'a>=2; sys_platform == "win32"',
                'a>=3; extra == "docs"',
            ],
        },
    }
    pins = {"a": "1.0", "b": "2.0"}
    assert check(pins, records, "3.12") == []
    assert check(pins, records, "3.11") == ["a 1.0 requires Python >=3.12, not 3.11", "b 2.0 requires a<1, pinned 1.0"]
    assert check({"a": "1.1", "b": "2.0"}, records, "3.12") == [
        "a==1.1: no metadata for this version in the report (make pins)"
    ]


def test_a_stale_report_is_reported_before_anything_else(tmp_path):
    pins = tmp_path / "cuda.txt"
    pins.write_text(CUDA.read_text() + "extra-package==1.0\n")
    assert check_files(pins, REPORT, ROOT / "pyproject.toml") == [
        f"{REPORT} was not made from {pins} as it is now: run `make pins`"
    ]


def test_a_bad_pin_line_names_file_and_line(tmp_path):
    path = tmp_path / "pins.txt"
    path.write_text("# header\ntorch==2.14.0\ntransformers>=5\n")
    with pytest.raises(PinError, match=r"pins.txt:3: expected 'name==version', got 'transformers>=5'"):
        read_pins(path)


def test_colab_pins_are_cuda_pins_and_leave_colab_its_torch_and_jupyter():
    colab, cuda = read_pins(COLAB, bounds=True), read_pins(CUDA)
    assert {name: cuda.get(name) for name in colab} == colab
    assert not COLAB_OWNED & pinned_names(COLAB)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {canonicalize_name(Requirement(r).name) for r in [*project["dependencies"], "bitsandbytes"]}
    assert needed - COLAB_OWNED - {"tqdm"} <= set(colab), "pin every library the kit adds to Colab"


def test_colab_bounds_are_lower_bounds_with_their_reason():
    lines = [line for line in COLAB.read_text().splitlines() if line[:1].isalpha()]
    assert all(" # " in line for line in lines), "say on each pin's line why it is there"
    bounds = [Requirement(line.split("#")[0]) for line in lines if "==" not in line]
    assert [b.name for b in bounds] == ["torchao"] and all(s.operator == ">=" for b in bounds for s in b.specifier)


def test_read_pins_skips_bounds_only_when_asked(tmp_path):
    path = tmp_path / "colab.txt"
    path.write_text("peft==0.21.2  # why\ntorchao>=0.16.0  # why\n")
    assert read_pins(path, bounds=True) == {"peft": "0.21.2"}
    with pytest.raises(PinError, match="torchao>=0.16.0"):
        read_pins(path)


def test_every_pin_file_pins_the_bundled_model_packages():
    models = [
        line for line in (ROOT / "constraints" / "bundled-models.txt").read_text().splitlines() if line[:1].isalpha()
    ]
    for path in ("cpu.txt", "cuda.txt", "colab.txt"):
        assert set(models) <= set(read_pins(ROOT / "constraints" / path, bounds=True)), path


def test_pyproject_torch_floor_meets_every_pinned_library():
    requires_python, requires = project_requirements(ROOT / "pyproject.toml")
    (floor,) = [s for r in requires if Requirement(r).name == "torch" for s in Requirement(r).specifier]
    environment = {**marker_environment("3.11"), "extra": "torch"}  # the kit uses transformers with torch
    applying = [
        Requirement(text)
        for record in metadata("3.11").values()
        for text in record["requires_dist"]
        if Requirement(text).name == "torch"
    ]
    asked = [
        Version(s.version)
        for r in applying
        if r.marker is None or r.marker.evaluate(environment)
        for s in r.specifier
        if s.operator == ">="
    ]
    assert floor.operator == ">=" and Version(floor.version) >= max(asked), f"a library asks for torch>={max(asked)}"
    assert requires_python == ">=3.11"


def test_overlay_lets_the_top_file_win():
    assert overlay({"transformers": "5.20.2"}, {"transformers": "5.24.0", "torch": "2.13.0"}) == {
        "transformers": "5.20.2",
        "torch": "2.13.0",
    }


def test_metadata_comes_from_pips_dry_run_report_with_a_source_fallback(monkeypatch):
    calls = []

    def fake_pip(command, capture_output, text):
        calls.append(command)
        if "--only-binary=:all:" in command and command[-1] == "deepspeed==0.19.8":
            return subprocess.CompletedProcess(command, 1, "", "No matching distribution")
        name, version = command[-1].split("==")
        item = {
            "metadata": {"name": name, "version": version, "requires_dist": ["torch>=2.0"]},
            "download_info": {"url": f"https://files.example/{name}-{version}.tar.gz#sha256=0"},
        }
        return subprocess.CompletedProcess(command, 0, json.dumps({"install": [item]}), "")

    monkeypatch.setattr(pins.subprocess, "run", fake_pip)
    records = pins.fetch_metadata({"deepspeed": "0.19.8", "peft": "0.21.2"}, "3.12")
    assert records["deepspeed"] == {
        "version": "0.19.8",
        "requires_python": "",
        "requires_dist": ["torch>=2.0"],
        "file": "deepspeed-0.19.8.tar.gz",
    }
    binary, source, peft = calls
    assert {"--dry-run", "--no-deps", "--use-feature=fast-deps"} <= set(binary) and "3.12" in binary
    assert "--python-version" not in source and "--python-version" in peft


def test_an_old_pip_is_refused_before_it_downloads_whole_wheels(tmp_path, monkeypatch):
    import pip

    monkeypatch.setattr(pip, "__version__", "23.2.1")
    with pytest.raises(RuntimeError, match="pip 23.2.1 downloads whole wheels"):
        pins.write_report(CUDA, tmp_path / "report.json")
    assert not (tmp_path / "report.json").exists()

"""The device check (benchmarks/gpu_check.py) in its CPU dry mode, and the wheel folder it carries."""

import json
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402
import gpu_wheels  # noqa: E402


@pytest.mark.models
def test_dry_mode_runs_every_kind_of_stage_through_the_kit(tmp_path):
    out = tmp_path / "check.json"
    stages = "env,build:gpu-16gb,qlora:gpu-16gb:dtype=bfloat16,evaluate:gpu-16gb,generate:gpu-16gb"
    stages += ",generate:gpu-16gb:fast_generation=true"
    argv = ["--dry", "--in-process", "--work", str(tmp_path / "work"), "--out", str(out), "--only", stages]
    assert gpu_check.main(argv) == 0
    document = json.loads(out.read_text())
    assert "Random-initialised" in document["note"] and document["device"] == "cpu"
    results = document["stages"]
    assert list(results) == stages.split(",") and all(r["status"] == "ok" for r in results.values())
    qlora = results["qlora:gpu-16gb:dtype=bfloat16"]
    assert qlora["steps"] == 2 and qlora["seconds_per_step"] > 0 and qlora["losses_finite"] and qlora["adapter_saved"]
    evaluation = results["evaluate:gpu-16gb"]
    assert evaluation["models_scored"] == ["base", "trained"]
    assert evaluation["truncated_items"] == evaluation["items"]  # over-long items are cut, never dropped
    assert evaluation["prompt_budget"] + 8 <= evaluation["engine_context"]
    generation = results["generate:gpu-16gb"]
    assert generation["rollout"]["new_tokens_per_s"] > 0 and generation["probe"]["prompt_tokens"] > 0
    assert generation["path"] == "default" and generation["probe"]["prefill_seconds"] > 0
    fast = results["generate:gpu-16gb:fast_generation=true"]
    assert fast["path"] == "fast" and fast["prefill_chunk"] and fast["probe"]["first_seconds"] > 0


def test_a_failing_stage_is_recorded_and_its_smaller_variant_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "PLAN", [("nope:gpu-16gb", 60, "env")])
    out = tmp_path / "check.json"
    assert gpu_check.main(["--dry", "--work", str(tmp_path), "--out", str(out)]) == 1
    stages = json.loads(out.read_text())["stages"]
    assert stages["nope:gpu-16gb"]["status"] == "failed" and "KeyError" in stages["nope:gpu-16gb"]["stderr_tail"]
    assert stages["env"]["status"] == "ok" and stages["env"]["versions"]["torch"]


def test_stage_specs_carry_profile_overrides():
    assert gpu_check.parse_spec("gpu-16gb:dtype=float16,dpo.max_length=4096") == (
        "gpu-16gb",
        {"dtype": "float16", "dpo.max_length": "4096"},
    )
    assert gpu_check.parse_spec("paper") == ("paper", {})


def test_bitsandbytes_is_trimmed_to_one_cuda_library_with_a_consistent_record(tmp_path):
    wheel = tmp_path / "bitsandbytes-0.0.0-py3-none-any.whl"
    libraries = ["cpu", "cuda118", "cuda128", "cuda130", "rocm71"]
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("bitsandbytes/__init__.py", "")
        for name in libraries:
            archive.writestr(f"bitsandbytes/libbitsandbytes_{name}.so", name * 100)
        archive.writestr("bitsandbytes-0.0.0.dist-info/RECORD", "stale\n")
    gpu_wheels.trim_bitsandbytes(wheel, "130")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        record = archive.read("bitsandbytes-0.0.0.dist-info/RECORD").decode().splitlines()
    kept = {n.rsplit("_", 1)[1].removesuffix(".so") for n in names if "libbitsandbytes_" in n}
    assert kept == {"cpu", "cuda130"}
    assert {row.split(",")[0] for row in record} == names
    with pytest.raises(SystemExit, match="cuda999"):
        gpu_wheels.trim_bitsandbytes(wheel, "999")


def test_wheel_versions_come_from_the_pin_files():
    cuda_pins = (Path(gpu_wheels.ROOT) / "constraints" / "cuda.txt").read_text()
    assert gpu_wheels.pinned("trl") in cuda_pins.splitlines()
    assert gpu_wheels.pinned("dill").startswith("dill==")  # not a GPU pin: taken from cpu.txt


def test_the_wheel_folder_brings_every_dependency_the_bare_gpu_image_lacks():
    import re
    import tomllib

    project = tomllib.loads((Path(gpu_wheels.ROOT) / "pyproject.toml").read_text())["project"]
    needed = {re.split(r"[<>=!~\[ ]", item, maxsplit=1)[0].lower() for item in project["dependencies"]}
    carried = {name.lower().replace("_", "-") for name in gpu_wheels.PACKAGES}
    assert needed - gpu_wheels.DEVICE_HAS - carried - set(gpu_wheels.NOT_NEEDED) == set()

"""Time estimates and the memory model: their measured inputs are the device check's, and they reproduce it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from longmab_utils import estimate
from longmab_utils.config import get_profile
from longmab_utils.specs import GPUS, hub_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
QWEN = hub_model("Qwen/Qwen2.5-3B-Instruct")


def stage(name: str) -> dict:
    """A stage of the H200 device check, from whichever of its two result files has it ok."""
    for path in sorted(RESULTS.glob("gpu_check-h200*.json")):
        found = json.loads(path.read_text())["stages"].get(name)
        if found and found["status"] == "ok":
            return found
    raise AssertionError(f"no ok stage {name}")


def test_measured_inputs_are_the_device_checks_figures():
    for batch in (2, 4):
        measured = stage(f"generate:gpu-16gb:gen_batch_size={batch}")
        assert measured["probe"]["prompt_tokens"] == estimate.HF_MEASURED["prompt"]
        assert measured["new_tokens"] == estimate.HF_MEASURED["new"]
        assert measured["probe"]["seconds"] == estimate.HF_MEASURED["seconds"][batch]
        assert measured["peak_allocated_gib"] == estimate.HF_MEASURED_PEAK_GIB[batch]
    assert stage("qlora:gpu-16gb:dtype=float16")["seconds_per_step"] == estimate.DPO_MEASURED[QWEN_ID]["seconds"]
    paper = stage("qlora:paper:dtype=bfloat16")
    assert paper["seconds_per_step"] == estimate.DPO_MEASURED[LLAMA_ID]["seconds"]
    assert paper["max_length"] == estimate.DPO_MEASURED[LLAMA_ID]["max_length"]
    assert stage("build:gpu-16gb")["parameters_b"] == pytest.approx(QWEN.params / 1e9, abs=0.01)


QWEN_ID, LLAMA_ID = "Qwen/Qwen2.5-3B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize("batch", [2, 4])
def test_the_models_reproduce_the_measured_generation_time_and_peak(batch):
    seconds = estimate.hf_seconds(QWEN, batch, batch, 12000, 256, GPUS["h200"])
    assert seconds == pytest.approx(estimate.HF_MEASURED["seconds"][batch], rel=1e-6)
    peak = estimate.hf_memory_gib(QWEN, batch, 12000, 256)
    assert peak == pytest.approx(estimate.HF_MEASURED_PEAK_GIB[batch], abs=0.05)


def test_the_memory_model_predicts_the_measured_evaluation_peak_and_out_of_memory():
    evaluation = stage("evaluate:gpu-16gb:gen_batch_size=2")
    peak = estimate.hf_memory_gib(QWEN, 2, evaluation["engine_context"] - 32, 32, adapter=True)
    assert peak == pytest.approx(evaluation["peak_allocated_gib"], abs=0.01)
    assert evaluation["engine_context"] == estimate.EVAL_MEASURED["context"] and evaluation["batch"] == 2
    assert estimate.hf_memory_gib(QWEN, 4, evaluation["engine_context"] - 32, 32, adapter=True) > 15  # measured OOM


def test_a_slower_gpu_takes_longer_and_more_tokens_take_longer():
    profile = get_profile("gpu-16gb")
    t4, h200 = (estimate.hours(estimate.estimate(profile, gpu)) for gpu in ("t4", "h200"))
    assert t4 > 2 * h200
    longer = get_profile("gpu-16gb", {"max_new_tokens": 640})
    assert estimate.hours(estimate.estimate(longer)) > estimate.hours(estimate.estimate(profile))


def test_the_gpu_profiles_fit_their_promised_time():
    assert estimate.hours(estimate.estimate(get_profile("gpu-16gb"))) <= 3  # one Colab session on a T4
    assert estimate.hours(estimate.estimate(get_profile("paper"))) <= 24  # one 80 GB GPU with vLLM


def test_the_old_gpu_16gb_sizes_would_take_days():
    old = get_profile("gpu-16gb", {"max_samples": "none", "rounds": 16, "max_new_tokens": 512})
    assert estimate.hours(estimate.estimate(old)) > 72


@pytest.mark.parametrize("name", ["gpu-16gb", "paper"])
def test_the_readme_shows_each_gpu_profiles_estimate_as_computed(name):
    assert estimate.format_estimate(get_profile(name)) in (ROOT / "README.md").read_text()


def test_the_estimate_command_prints_the_table_and_refuses_a_cpu_profile():
    run = [sys.executable, "-m", "longmab_utils", "estimate"]
    shown = subprocess.run([*run, "--profile", "gpu-16gb"], capture_output=True, text=True, cwd=ROOT)
    assert shown.returncode == 0 and shown.stdout.strip() == estimate.format_estimate(get_profile("gpu-16gb"))
    refused = subprocess.run([*run, "--profile", "cpu-tiny"], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "plans for no GPU" in refused.stderr


def test_the_gpu_page_states_the_fitted_constants_as_computed():
    text = " ".join((ROOT / "docs" / "gpu.md").read_text().split())
    fixed, per_row = estimate.hf_overhead()
    assert f"overhead per decode step of {fixed * 1000:.0f} ms plus {per_row * 1000:.0f} ms per row" in text
    assert f"{estimate.activation_bytes_per_hidden():.1f} bytes per hidden unit" in text
    assert f"holds {estimate.adapter_factor():.2f} times that" in text

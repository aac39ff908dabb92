"""The checks a GPU profile's real models would trigger run first, on the real names and shapes."""

import re

import pytest

from longmab_utils import preflight as checks
from longmab_utils.config import get_profile
from longmab_utils.errors import UserError
from longmab_utils.estimate import hf_memory_gib
from longmab_utils.specs import GPUS, hub_model


@pytest.fixture
def no_token(monkeypatch):
    monkeypatch.setattr(checks, "has_token", lambda: False)


@pytest.mark.parametrize("name", ["gpu-16gb", "paper"])
def test_the_gpu_profiles_pass_as_they_are(name, monkeypatch):
    monkeypatch.setattr(checks, "has_token", lambda: True)
    assert checks.preflight(get_profile(name)) == []


def test_the_authors_embedder_is_refused_without_its_opt_in_before_anything_loads():
    authors = get_profile("paper", {"embedding_model": "openbmb/MiniCPM-Embedding"})
    with pytest.raises(UserError, match="embedder_trust_remote_code=true"):
        checks.preflight(authors, stand_ins=True)
    allowed = get_profile("paper", {"embedding_model": "openbmb/MiniCPM-Embedding", "embedder_trust_remote_code": True})
    checks.preflight(allowed, stand_ins=True)


def test_a_gated_model_without_a_token_stops_a_real_run_and_is_reported_under_stand_ins(no_token):
    with pytest.raises(checks.PreflightError, match="Llama-3.1-8B-Instruct is gated"):
        checks.preflight(get_profile("paper"))
    notes = checks.preflight(get_profile("paper"), stand_ins=True)
    assert len(notes) == 1 and "gated" in notes[0] and "a real run would stop" in notes[0]
    assert checks.preflight(get_profile("gpu-16gb")) == []  # Qwen2.5 is not gated


def test_prompts_beyond_the_context_are_refused_with_the_step_named(no_token):
    with pytest.raises(checks.PreflightError, match=r"probe prompts of up to 12,\d+ tokens") as error:
        checks.preflight(get_profile("gpu-16gb", {"max_model_len": 8192}))
    assert "rollout" not in str(error.value)  # 4 chunks of 1,500 tokens still fit 8,192


@pytest.mark.parametrize(
    ("name", "change", "setting"),
    [
        ("paper", {"gen_batch_size": 16}, "gen_batch_size (probe)=16"),
        ("paper", {"eval_batch_size": "none"}, "eval_batch_size=8"),
        ("gpu-16gb", {"gen_batch_size": 8}, "gen_batch_size (probe)=8"),
        ("gpu-16gb", {"eval_batch_size": 4}, "eval_batch_size=4"),
    ],
)
def test_transformers_batches_that_exceed_the_target_gpu_are_refused_with_what_fits(name, change, setting):
    with pytest.raises(checks.PreflightError, match=r"fits") as error:
        checks.preflight(get_profile(name, change), stand_ins=True)
    assert setting in str(error.value)


def test_the_largest_batch_named_as_fitting_does_fit():
    model, gpu = hub_model("meta-llama/Llama-3.1-8B-Instruct"), GPUS["h100-80gb"]
    probe = checks.prompt_lengths(get_profile("paper"))["probe"]
    with pytest.raises(checks.PreflightError) as error:
        checks.preflight(get_profile("paper", {"gen_batch_size": 32}), stand_ins=True)
    fits = int(re.search(r"backend; (\d+) fits", str(error.value)).group(1))
    assert hf_memory_gib(model, fits, probe, 1024) <= gpu.memory_gib < hf_memory_gib(model, fits + 1, probe, 1024)


def test_vllm_only_profiles_skip_the_transformers_memory_check():
    checks.preflight(get_profile("paper", {"backend": "vllm", "gen_batch_size": 64}), stand_ins=True)

"""DPO settings mapping, drift against the pinned libraries, pair checks, and a one-step CPU smoke run."""

import dataclasses
import inspect
import json
import math

import pytest
import torch

from longmab_utils.config import get_profile
from longmab_utils.dpo import (
    DPOSettings,
    check_pairs,
    dpo_config_kwargs,
    dpo_settings,
    leading_bos,
    llamafactory_yaml,
    lora_config,
    quantization_config,
    split_pairs,
    train_dpo,
)
from longmab_utils.models import BUNDLED_POLICY, load_policy


def test_settings_map_onto_trl_field_by_field():
    kwargs = dpo_config_kwargs(DPOSettings(sft_weight=0.2), "out", cuda=True, has_eval=True)
    assert kwargs["loss_type"] == ["sigmoid", "sft"] and kwargs["loss_weights"] == [1.0, 0.2]
    assert kwargs["beta"] == 0.1 and kwargs["learning_rate"] == 2e-5 and kwargs["num_train_epochs"] == 2.0
    assert kwargs["lr_scheduler_type"] == "cosine" and kwargs["warmup_steps"] == 0.1
    assert kwargs["per_device_train_batch_size"] == 1 and kwargs["max_length"] == 8500
    assert kwargs["bf16"] is True and kwargs["activation_checkpointing"] is True and kwargs["eval_strategy"] == "steps"
    assert kwargs["precompute_ref_log_probs"] is True
    cpu = dpo_config_kwargs(DPOSettings(precompute_ref=False), "out", cuda=False, has_eval=False)
    assert (
        cpu["precompute_ref_log_probs"] is False
        and cpu["bf16"] is False
        and cpu["use_cpu"] is True
        and cpu["eval_strategy"] == "no"
    )


def test_every_argument_we_pass_is_accepted_by_the_pinned_libraries():
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import DPOConfig

    accepted = {f.name for f in dataclasses.fields(DPOConfig)}
    assert set(dpo_config_kwargs(DPOSettings(), "out", cuda=False, has_eval=True)) <= accepted
    DPOConfig(**dpo_config_kwargs(DPOSettings(), "/tmp/longmab-dpo-drift", cuda=False, has_eval=True))
    lora = lora_config(DPOSettings(lora_rank=4, lora_alpha=8, lora_dropout=0.05))
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.target_modules) == (4, 8, 0.05, "all-linear")
    assert isinstance(lora, LoraConfig)
    bnb = set(inspect.signature(BitsAndBytesConfig.__init__).parameters)
    assert {"load_in_4bit", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype"} <= bnb


def test_qlora_without_cuda_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="quantization=none"):
        quantization_config(DPOSettings(quantization="4bit"), cuda=False)
    assert quantization_config(DPOSettings(quantization="none"), cuda=False) is None
    config = quantization_config(DPOSettings(), cuda=True)
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_profiles_carry_the_reference_sft_weights():
    assert dpo_settings(get_profile("paper")).sft_weight == 0.1
    assert dpo_settings(get_profile("gpu-16gb")).sft_weight == 0.2
    assert dpo_settings(get_profile("cpu-tiny")).quantization == "none"


def test_split_is_seeded_and_holds_out_a_tenth():
    pairs = [{"id": str(i)} for i in range(20)]
    train, val = split_pairs(pairs, 0.1, 1)
    assert len(val) == 2 and len(train) == 18 and split_pairs(pairs, 0.1, 1) == (train, val)
    assert {p["id"] for p in train} | {p["id"] for p in val} == {str(i) for i in range(20)}
    assert split_pairs(pairs[:3], 0.1, 1) == (split_pairs(pairs[:3], 0.1, 1)[0], [])


def test_leading_bos_counts_repeated_openers():
    assert leading_bos([1, 1, 5], 1) == 2 and leading_bos([1, 5, 1], 1) == 1 and leading_bos([5], None) == 0


PAIRS = [
    {
        "id": f"p{i}",
        "prompt": f"Document: Mira lives in Oldtown {i}.\nQuestion: Where does Mira live?",
        "chosen": f"Reasoning: The document says so.\nAnswer: Oldtown {i}",
        "rejected": "Reasoning: I guess.\nAnswer: Newport",
        "chosen_score": 1.0,
        "rejected_score": 0.0,
    }
    for i in range(2)
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_policy(BUNDLED_POLICY, dtype="float32")[1]


@pytest.mark.models
def test_check_pairs_reports_broken_pairs(tokenizer):
    broken = [dict(PAIRS[0], rejected=PAIRS[0]["chosen"], rejected_score=1.0)]
    report = check_pairs(PAIRS + broken, tokenizer, max_length=20)
    assert report["identical_responses"] == 1 and report["non_positive_gap"] == 1
    assert report["over_max_length"] == 3 and report["double_bos"] == 0
    with pytest.raises(ValueError, match="no preference pairs"):
        check_pairs([], tokenizer, 100)


@pytest.mark.models
def test_one_dpo_step_on_cpu_with_gradient_checkpointing_saves_an_adapter_that_changes_the_logits(tmp_path):
    pairs_path = tmp_path / "pairs.jsonl"
    pairs_path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    settings = DPOSettings(
        quantization="none",
        gradient_checkpointing=True,  # as the GPU profiles train; the notebook smoke run covers False
        epochs=1,
        batch_size=2,
        learning_rate=1e-3,
        warmup=0.0,  # with warmup the only step would run at learning rate 0
        max_length=256,
    )
    result = train_dpo(pairs_path, BUNDLED_POLICY, tmp_path, settings, dtype="float32")
    losses = [entry["loss"] for entry in result["log"] if "loss" in entry]
    assert losses and all(math.isfinite(float(loss)) for loss in losses)
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "dpo_settings.json").exists()
    base, tokenizer = load_policy(BUNDLED_POLICY, dtype="float32")
    ids = tokenizer("Where does Mira live?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = base(ids).logits
        trained, _ = load_policy(BUNDLED_POLICY, adapter=str(adapter), dtype="float32")
        after = trained(ids).logits
    assert not torch.allclose(before, after)


def test_llamafactory_yaml_mirrors_the_settings():
    import yaml

    text = llamafactory_yaml(dpo_settings(get_profile("paper")), "meta-llama/Llama-3.1-8B-Instruct", "/data/lf")
    config = yaml.safe_load(text)
    assert config["stage"] == "dpo" and config["template"] == "llama3" and config["pref_ftx"] == 0.1
    assert config["pref_beta"] == 0.1 and config["cutoff_len"] == 8500 and config["quantization_bit"] == 4
    assert config["dataset"] == "longmab_dpo" and config["dataset_dir"] == "/data/lf"
    qwen = yaml.safe_load(llamafactory_yaml(dpo_settings(get_profile("gpu-16gb")), "Qwen/Qwen2.5-3B-Instruct", "d"))
    assert qwen["template"] == "qwen" and qwen["pref_ftx"] == 0.2

"""The adapter's model card: Hugging Face metadata, the training records, and the paired results once evaluated."""

import dataclasses
import json

from huggingface_hub import ModelCard

from longmab_utils.config import get_profile
from longmab_utils.dpo import dpo_settings
from longmab_utils.evaluation import paired_section
from longmab_utils.modelcard import write_model_card

SUMMARY = {"train_pairs": 16, "val_pairs": 2, "steps": 8, "first_loss": 0.693, "last_loss": 0.41}
SUMMARY |= {"trainable_params": 1_000, "total_params": 135_000}


def adapter_folder(tmp_path, profile):
    """An adapter folder holding the records `train_dpo` and `train` write beside the weights."""
    folder = tmp_path / "adapter"
    folder.mkdir()
    settings = {**dataclasses.asdict(dpo_settings(profile)), "policy_model": profile.policy_model}
    (folder / "dpo_settings.json").write_text(json.dumps(settings))
    (folder / "train_summary.json").write_text(json.dumps(SUMMARY))
    return folder


def test_a_trained_card_loads_as_a_hub_card_with_its_base_model_settings_and_no_results_yet(tmp_path):
    profile = get_profile("gpu-16gb", {"dpo.beta": "0.25"})
    card = ModelCard.load(write_model_card(adapter_folder(tmp_path, profile), profile))
    assert card.data.base_model == "Qwen/Qwen2.5-3B-Instruct" and card.data.library_name == "peft"
    assert "dpo" in card.data.tags
    assert "| `dpo.beta` | `0.25` |" in card.text and "16 preference pairs (2 more held out" in card.text
    assert "loss 0.6930 -> 0.4100" in card.text and "1,000 trainable of 135,000 parameters" in card.text
    assert "Not evaluated yet" in card.text


def test_a_local_policy_is_named_in_the_text_but_not_claimed_as_a_hub_base_model(tmp_path):
    profile = get_profile("smoke")
    card = ModelCard.load(write_model_card(adapter_folder(tmp_path, profile), profile))
    assert card.data.base_model is None and profile.policy_model in card.text


def test_the_evaluated_card_carries_the_paired_comparison_per_set_and_overall(tmp_path):
    profile = get_profile("smoke")
    base = {"a": [{"id": "1", "f1": 0.0, "em": 0}, {"id": "2", "f1": 1.0, "em": 1}]}
    trained = {"a": [{"id": "1", "f1": 1.0, "em": 1}, {"id": "2", "f1": 1.0, "em": 1}]}
    paired = paired_section(base, trained)
    text = ModelCard.load(write_model_card(adapter_folder(tmp_path, profile), profile, paired)).text
    rows = [line for line in text.splitlines() if line.startswith(("| a |", "| all items |"))]
    assert [row.split(" | ")[1:5] for row in rows] == [["2", "1", "1", "0"]] * 2  # items, wins, ties, losses
    assert "+50.0" in rows[0] and "Not evaluated yet" not in text

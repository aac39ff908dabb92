"""The trained adapter's model card: `adapter/README.md` in the Hugging Face format, ready for `push_to_hub`.

`train` writes it (base model, data, settings, limitations); `evaluate` rewrites it with the paired comparison
of base and adapter (wins, ties, losses, sign test, bootstrap intervals) when it evaluates the run's own adapter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .artifacts import DPO_SETTINGS, TRAIN_SUMMARY
from .config import Profile, project_path

KIT_URL = "https://github.com/longmab-kit/longmab-po-notebooks"
CARD = "README.md"


def data_card(data: str) -> str:
    """Where the training data is described: the card `build-data` wrote beside the file, else the kit's data
    README (the bundled sets)."""
    from .builddata import card_path

    built = card_path(project_path(data))
    return str(built) if built.exists() else f"{KIT_URL}/blob/main/data/README.md"


def evaluation_section(paired: dict[str, Any] | None) -> str:
    """The card's results: the paired comparison per evaluation set and over all items, or how to get it."""
    if not paired:
        return "Not evaluated yet: `python -m longmab_utils evaluate` (notebook 06) writes this section.\n"

    def points(difference: dict[str, float]) -> str:
        return f"{100 * difference['mean']:+.1f} [{100 * difference['low']:+.1f}, {100 * difference['high']:+.1f}]"

    rows = [
        f"| {name} | {row['n']} | {row['wins']} | {row['ties']} | {row['losses']} | {row['p']:.3g} | "
        f"{points(row['em_difference'])} | {points(row['f1_difference'])} |"
        for name, row in {**paired["sets"], "all items": paired["all"]}.items()
    ]
    return (
        f"Adapter against its base model on the same held-out items, greedy decoding. Wins, ties and losses by "
        f"{paired['wins_by'].upper()}; p: {paired['test']}; differences in points with their {paired['interval']}.\n\n"
        "| set | items | wins | ties | losses | p | EM difference | F1 difference |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def rounded(value: float | None) -> str:
    """A logged loss to four decimals, or `none` when nothing was logged."""
    return "none" if value is None else f"{value:.4f}"


def card_text(
    profile: Profile, settings: dict[str, Any], summary: dict[str, Any], paired: dict[str, Any] | None = None
) -> str:
    """The whole card: metadata block, description, data, the DPO `settings` it was trained with, the training
    `summary`, results and limitations."""
    from huggingface_hub import ModelCardData

    metadata = ModelCardData(
        base_model=profile.policy_model if "/" in profile.policy_model and ":" not in profile.policy_model else None,
        library_name="peft",
        pipeline_tag="text-generation",
        tags=["dpo", "lora", "trl", "long-context", "longmab-po"],
    )
    merged = f" with the adapter `{profile.policy_adapter}` merged in" if profile.policy_adapter else ""
    table = "\n".join(f"| `dpo.{key}` | `{value}` |" for key, value in settings.items() if key != "policy_model")
    return f"""---
{metadata.to_yaml()}
---

# LongMab-PO adapter for {profile.policy_model}

A LoRA adapter trained with DPO on preference pairs that a multi-armed bandit over context chunks sampled
("Chunks as Arms: Multi-Armed Bandit-Guided Sampling for Long-Context LLM Preference Optimization"), made by the
[LongMab-PO notebook kit]({KIT_URL}) with its `{profile.name}` profile and seed {profile.seed}.

## Training data
{summary.get("train_pairs")} preference pairs ({summary.get("val_pairs")} more held out during training) from the
samples of `{profile.data}`; data card: {data_card(profile.data)}.

## Training settings
Base policy `{profile.policy_model}`{merged},
{summary.get("steps")} logged steps, loss {rounded(summary.get("first_loss"))} -> {rounded(summary.get("last_loss"))},
{summary.get("trainable_params", 0):,} trainable of {summary.get("total_params", 0):,} parameters.

| setting | value |
|---|---|
{table}

## Evaluation
{evaluation_section(paired)}
## Limitations
- Trained at the `{profile.name}` profile's scale; the paper's gains were reported for 8B policies trained on
  thousands of samples and evaluated on LongBench and InfiniteBench at up to 100k tokens.
- The evaluation above uses the profile's evaluation sets (the kit's synthetic sets unless `eval_data` points at
  real benchmark files): read its item counts and intervals before its averages.
- A LoRA adapter: load it on top of `{profile.policy_model}` with PEFT; it is not a merged model.
"""


def write_model_card(adapter_dir: str | os.PathLike, profile: Profile, paired: dict[str, Any] | None = None) -> Path:
    """Write `adapter/README.md` from the adapter's own records (`dpo_settings.json`, `train_summary.json`) and,
    when given, the paired comparison; returns its path."""
    from huggingface_hub import ModelCard

    from .data import read_json

    folder = Path(adapter_dir)
    settings, summary = read_json(folder / DPO_SETTINGS), read_json(folder / TRAIN_SUMMARY)
    path = folder / CARD
    ModelCard(card_text(profile, settings, summary, paired)).save(path)
    return path

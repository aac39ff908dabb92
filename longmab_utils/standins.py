"""`reproduce --stand-ins`: a GPU profile's course on a CPU, its hub models replaced by the bundled ones.

Every substitution and scaling is a `--set` override, listed with its reason before the run starts; every other
setting (trust flags, backend `auto`, templates, loss settings, evaluation sets) stays as the profile has it. The
training data is built by `build-data` from a MuSiQue-format fixture (the bundled tiny set's paragraphs) into the
run folder, under the profile's own file name. The checks the real models would trigger run on the profile as given
(`preflight.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .builddata import BuildSettings, build_data, policy_counter
from .bundled import BUNDLED_EMBEDDER, BUNDLED_POLICY
from .config import PROJECT_ROOT, Profile, get_profile, shown
from .data import read_records, write_jsonl

FIXTURE_SOURCE = PROJECT_ROOT / "data" / "sample" / "tiny" / "train.jsonl"
WARMSTART_ADAPTER = "data/warmstart_adapter"
# Sizes that make a profile's course take minutes on two cores, in bundled-policy tokens.
SIZES: dict[str, Any] = {
    "max_samples": 4,
    "rounds": 4,
    "chunk_size": 80,
    "probe_max_new_tokens": 96,
    "max_new_tokens": 64,
    "max_prompt_length": 256,
    "dpo.max_length": 640,  # the 256-token context budget, the answer template (~250) and a 64-token response
    "dpo.epochs": 1.0,
    "dpo.eval_steps": None,
    "dpo.save_steps": None,
    "eval_max_input_len": 1024,
    "eval_max_new_tokens": 64,
    "eval_max_items": 2,
    "rollout_batch": 4,  # one batch per round and one for the probes: batching changes no response (deviation 11)
    "gen_batch_size": 4,
    "eval_batch_size": 6,  # the 6 evaluation prompts (3 sets x 2 items) in one batch
    "ablation_samples": 4,
    "cell_timeout": 1800,
}
CONTEXT_TOKENS = (400, 800)  # built contexts: 5-10 chunks of 80 tokens, as 8k-16k tokens give 5-11 of 1,500


@dataclass(frozen=True)
class Substitution:
    """One setting the stand-in run changes: its key, the profile's value, the stand-in's, and why."""

    key: str
    was: Any
    now: Any
    why: str


def musique_fixture(out: Path) -> Path:
    """Write the bundled tiny set as MuSiQue records (a paragraph is supporting when it holds evidence)."""
    records = []
    for sample in read_records(FIXTURE_SOURCE):
        paragraphs = [
            {
                "idx": i,
                "title": f"{sample['id']} passage {i}",
                "paragraph_text": text,
                "is_supporting": any(fact in text for fact in sample["evidence"]),
            }
            for i, text in enumerate(sample["context"].split("\n\n"))
        ]
        records.append(
            {
                "id": sample["id"],
                "question": sample["question"],
                "answer": sample["answer"],
                "answer_aliases": [],
                "answerable": True,
                "paragraphs": paragraphs,
            }
        )
    write_jsonl(out, records)
    return out


def _value(profile: Profile, key: str) -> Any:
    """A profile's value of a dotted key."""
    value: Any = profile
    for part in key.split("."):
        value = getattr(value, part)
    return value


def substitutions(profile: Profile, data: Path) -> list[Substitution]:
    """What a stand-in run of `profile` changes, with `data` as its built training file."""
    models = {
        "policy_model": (
            BUNDLED_POLICY,
            "hub weights are not on this machine; the bundled 135M policy gives real text",
        ),
        "policy_adapter": (WARMSTART_ADAPTER, "the bundled policy follows the answer format only with its warm start"),
        "embedding_model": (BUNDLED_EMBEDDER, "the bundled embedder gives real cosine priors offline"),
        "data": (str(data), "built by build-data from a MuSiQue-format fixture, under the profile's file name"),
    }
    if profile.dpo.quantization == "4bit":
        models["dpo.quantization"] = ("none", "4-bit QLoRA needs CUDA (bitsandbytes); LoRA on the same pairs")
    if profile.backend == "vllm":
        models["backend"] = ("hf", "vLLM needs CUDA; `auto` stays `auto` (transformers on a CPU)")
    if profile.dtype in ("float16", "bfloat16"):
        models["dtype"] = ("float32", "half precision is a GPU setting")
    changes = [Substitution(key, _value(profile, key), now, why) for key, (now, why) in models.items()]
    changes += [
        Substitution(key, _value(profile, key), now, "size: minutes on two CPU cores")
        for key, now in SIZES.items()
        if _value(profile, key) != now
    ]
    return changes


def prepare(profile: Profile, run_dir: Path) -> list[Substitution]:
    """Build the stand-in training data into `run_dir/stand-ins/` and return the run's substitutions."""
    folder = Path(run_dir) / "stand-ins"
    data = folder / Path(profile.data).name
    changes = substitutions(profile, data)
    small = get_profile(profile.name, {**overrides(changes), "data": str(FIXTURE_SOURCE)})
    fixture = musique_fixture(folder / "musique_fixture.jsonl")
    settings = BuildSettings("paragraphs", SIZES["max_samples"], *CONTEXT_TOKENS, profile.seed)
    build_data(str(fixture), None, settings, policy_counter(small), small.policy_model, data)
    return changes


def overrides(changes: list[Substitution]) -> dict[str, Any]:
    """The substitutions as `--set` overrides."""
    return {change.key: change.now for change in changes}


def table(profile_name: str, changes: list[Substitution]) -> str:
    """The substitutions as a table a person reads before the run starts."""
    rows = [(c.key, shown(c.was), shown(c.now), c.why) for c in changes]
    widths = [max(len(row[i]) for row in [("setting", "profile", "stand-in", ""), *rows]) for i in range(3)]
    lines = [f"stand-ins for profile {profile_name} (every other setting is the profile's):"]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + f"  {row[3]}"
              for row in [("setting", "profile", "stand-in", "why"), *rows]]  # fmt: skip
    return "\n".join(lines)


def record(changes: list[Substitution]) -> list[dict[str, Any]]:
    """The substitutions as JSON-ready rows for the manifest."""
    return [json.loads(json.dumps(change.__dict__, default=str)) for change in changes]

"""The run folder's bookkeeping: what each step read, so that nothing in it is silently replaced or mixed.

Introduced in notebook 03. `settings.json` holds one record per step: the settings of `STEPS` that
step reads and the SHA-256 of the run-folder artifacts it read. Rerunning a step with the same
record resumes or reuses its work; with other settings or inputs it stops, naming what changed.
`force` redoes it and marks every later step that has a record stale, in `settings.json` and in
that step's JSON summary, until the later step is run again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .artifacts import (
    ADAPTER,
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    EVALUATION_FIGURE,
    LLAMAFACTORY,
    METRICS,
    PAIRS,
    PAIRS_SUMMARY,
    PAIRS_TRL,
    PREDICTIONS,
    PRIORS,
    PROBE_SUMMARY,
    ROLLOUT,
    ROLLOUT_SUMMARY,
    SAMPLES,
    SETTINGS,
)
from .config import Profile, settings_items, shown
from .data import read_json, write_json
from .errors import UserError

STALE = "stale"


class RunDirConflict(UserError):
    """The run directory holds a step made with other settings or inputs, or one made from stale inputs."""


@dataclass(frozen=True)
class Step:
    """What one pipeline step reads and writes in the run folder."""

    settings: tuple[str, ...]
    """Profile keys (dotted for DPO) whose values change what the step writes."""
    outputs: tuple[str, ...]
    """Files and folders it writes, removed before it is redone."""
    summary: str
    """Its JSON summary, which carries the stale mark."""


SAMPLING = ("policy_model", "policy_adapter", "backend", "dtype", "max_model_len", "temperature", "top_p")
SAMPLING += ("presence_penalty", "seed")
DPO = ("beta", "sft_weight", "learning_rate", "epochs", "warmup", "batch_size", "grad_accum", "max_length")
DPO += ("val_size", "lora_rank", "lora_alpha", "lora_dropout", "quantization")

STEPS: dict[str, Step] = {
    "probe": Step(
        (*SAMPLING, "embedding_model", "max_samples", "chunk_size", "overlap", "min_sentences", "prior")
        + ("keep_invalid_probes", "probe_max_new_tokens"),
        (SAMPLES, PRIORS, PROBE_SUMMARY),
        PROBE_SUMMARY,
    ),
    "rollout": Step(
        (*SAMPLING, "rounds", "top_k", "policy", "reward_subem_on", "max_new_tokens"),
        (ROLLOUT, ROLLOUT_SUMMARY),
        ROLLOUT_SUMMARY,
    ),
    "pairs": Step(
        ("policy_model", "max_prompt_length", "seed"),
        (PAIRS, PAIRS_TRL, PAIRS_SUMMARY, LLAMAFACTORY),
        PAIRS_SUMMARY,
    ),
    "train": Step(
        ("policy_model", "policy_adapter", "dtype", "seed", "dpo.seed", *(f"dpo.{key}" for key in DPO)),
        (ADAPTER, "_trainer"),
        "adapter/train_summary.json",
    ),
    "evaluate": Step(
        ("policy_model", "policy_adapter", "backend", "dtype", "presence_penalty")
        + ("eval_max_input_len", "eval_max_new_tokens", "eval_max_items"),
        (METRICS, PREDICTIONS, EVALUATION_FIGURE),
        METRICS,
    ),
}
"""Each step, in pipeline order, with the settings it records; the rest of a profile changes no artifact."""

NOT_RECORDED = (
    ("name", "trust_remote_code", "embedder_trust_remote_code", "rollout_batch", "gen_batch_size", "eval_batch_size")
    + ("fast_generation",)
    + ("tensor_parallel_size", "gpu_memory_utilization", "enable_prefix_caching", "cell_timeout", "ablation_samples")
    + ("target_gpu",)
    + ("data", "eval_data")  # their content is hashed instead: samples.jsonl and each evaluation file
    + ("dpo.gradient_checkpointing", "dpo.precompute_ref", "dpo.logging_steps", "dpo.eval_steps", "dpo.save_steps")
    + ("dpo.deepspeed",)
    + ("dpo.report_to",)
)
"""Permissions, speed, memory and logging knobs, and paths whose content is hashed: no step records them."""

PRODUCERS = {SAMPLES: "probe", PRIORS: "probe", ROLLOUT: "rollout", PAIRS: "pairs"}
PRODUCERS[ADAPTER] = "train"
"""The step that writes each run-folder artifact a later step reads."""


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def adapter_sha256(folder: str | os.PathLike) -> str:
    """Hex SHA-256 of an adapter's weights and config (its summaries and plots do not count)."""
    digest = hashlib.sha256()
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        path = Path(folder) / name
        digest.update(f"{name}:{sha256(path) if path.exists() else 'missing'}\n".encode())
    return digest.hexdigest()


def step_settings(profile: Profile, step: str) -> dict[str, Any]:
    """The values of the settings `step` records, by key."""
    values = {key: value for key, value, _ in settings_items(profile)}
    return {key: values[key] for key in STEPS[step].settings}


def read_settings(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run folder's `settings.json` (empty when there is none)."""
    path = Path(run_dir) / SETTINGS
    return read_json(path) if path.exists() else {}


def stale_steps(run_dir: str | os.PathLike) -> dict[str, str]:
    """The steps marked stale, each with the reason."""
    return read_settings(run_dir).get(STALE, {})


def changes(record: dict[str, Any], settings: dict[str, Any], inputs: dict[str, str]) -> list[str]:
    """What differs between a step's record and this run: `key old -> new` per setting, a short hash per input."""
    if "settings" not in record:
        return ["made by an older version of the kit, which recorded no settings per step"]
    found = []
    old_settings, old_inputs = record["settings"], record.get("inputs", {})
    for key in [*settings, *(k for k in old_settings if k not in settings)]:
        if key not in old_settings or key not in settings or old_settings[key] != settings[key]:
            old, new = (shown(s[key]) if key in s else "unset" for s in (old_settings, settings))
            found.append(f"{key} {old} -> {new}")
    for name in [*inputs, *(n for n in old_inputs if n not in inputs)]:
        if old_inputs.get(name) != inputs.get(name):
            old, new = (s[name][:12] if name in s else "none" for s in (old_inputs, inputs))
            found.append(f"{name} changed (sha256 {old} -> {new})")
    return found


def _stamp(run_dir: Path, step: str, reason: str | None) -> None:
    """Put the stale reason into the step's JSON summary, or take it out (None)."""
    path = run_dir / STEPS[step].summary
    if not path.exists():
        return
    document = read_json(path)
    if reason is None and STALE not in document:
        return
    document.pop(STALE, None)
    write_json(path, document if reason is None else {STALE: reason, **document})


def _remove(path: Path) -> None:
    """Delete a file or a folder if it exists."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _check_fresh(run_dir: Path, inputs: dict[str, str], stale: dict[str, str]) -> None:
    """Refuse inputs that a stale step made."""
    for name in inputs:
        producer = PRODUCERS.get(name)
        if producer in stale:
            raise RunDirConflict(
                f"{run_dir / name} is stale ({stale[producer]}): rerun {producer} first, or start a new --run-dir"
            )


def later_steps(step: str) -> list[str]:
    """The steps after `step`, in pipeline order."""
    order = list(STEPS)
    return order[order.index(step) + 1 :]


def begin(
    run_dir: str | os.PathLike,
    step: str,
    profile: Profile,
    inputs: dict[str, str],
    force: bool = False,
    shard: str | None = None,
    **note: Any,
) -> bool:
    """Check a step against its record and write the new one; True when the record matched (resume or reuse).

    A record with other settings or inputs stops the step while any of its outputs exist, unless
    `force` or the step is stale: then its outputs are removed and every later step with a record is
    marked stale. `shard` (a rollout shard's file name) keeps that shard's record next to its file.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    document = read_settings(run_dir)
    stale = document.get(STALE, {})
    _check_fresh(run_dir, inputs, stale)
    record_path = run_dir / (f"{shard}.settings.json" if shard else SETTINGS)
    record = (read_json(record_path) if record_path.exists() else None) if shard else document.get(step)
    outputs = [run_dir / name for name in ((shard,) if shard else STEPS[step].outputs)]
    settings = step_settings(profile, step)
    found = changes(record, settings, inputs) if record is not None else []
    matched = record is not None and not found and not force
    if (record is not None or force) and not matched and any(path.exists() for path in outputs):
        if found and not force and step not in stale:
            later = [s for s in later_steps(step) if s in document and not shard]
            marks = f" and mark {', '.join(later)} stale" if later else ""
            raise RunDirConflict(
                f"{run_dir} has {shard or step} made with other settings or inputs ({'; '.join(found)}): start a "
                f"new --run-dir, or rerun with --force (force=True in a notebook) to redo it here{marks}"
            )
        for path in outputs:
            _remove(path)
    new = {"settings": settings, "inputs": inputs, **note}
    if shard:
        write_json(record_path, new)
        return matched
    document[step] = new
    if stale.pop(step, None) is not None:
        _stamp(run_dir, step, None)
    if not matched:
        reason = f"made before {step} was redone on {datetime.now().isoformat(timespec='seconds')}"
        for later in later_steps(step):
            if later in document and later not in stale:
                stale[later] = reason
                _stamp(run_dir, later, reason)
    document[STALE] = stale
    write_json(run_dir / SETTINGS, document)
    return matched


def check_shards(run_dir: str | os.PathLike, names: list[str], profile: Profile, inputs: dict[str, str]) -> None:
    """Refuse to merge rollout shards made with other settings or inputs than this merge's (or not recorded)."""
    settings = step_settings(profile, "rollout")
    for index, name in enumerate(names):
        path = Path(run_dir) / f"{name}.settings.json"
        if not (Path(run_dir) / name).exists():
            continue
        found = changes(read_json(path), settings, inputs) if path.exists() else ["no settings recorded"]
        if found:
            raise RunDirConflict(
                f"{Path(run_dir) / name} was made with other settings or inputs than this merge "
                f"({'; '.join(found)}): merge with the settings it used, or redo it with "
                f"`rollout --shard {index}/{len(names)} --force`"
            )

"""The pipeline steps as functions: what the CLI runs and what the notebooks call, artifact in, artifact out.

Introduced in notebook 03. Each step reads the previous step's file from the run directory, checks
its inputs before any model loads, records the effective settings in `settings.json`, and writes
its own artifact under a fixed name.
"""

from __future__ import annotations

import os
from pathlib import Path

from .chunking import HFTokenCounter
from .config import Profile, as_dict, project_path
from .data import read_json, read_records, read_samples, write_json

SETTINGS_FILE = "settings.json"


class RunDirConflict(RuntimeError):
    """The run directory holds artifacts made with other settings."""


def load_samples(profile: Profile, data: str | None = None) -> list[dict]:
    """The profile's training samples (validated), cut to `max_samples`."""
    samples = read_samples(project_path(data or profile.data))
    return samples[: profile.max_samples] if profile.max_samples else samples


def record_settings(run_dir: str | os.PathLike, step: str, profile: Profile, **extra: object) -> None:
    """Store the effective settings of a step; resuming a step with different settings is refused."""
    path = Path(run_dir) / SETTINGS_FILE
    settings = read_json(path) if path.exists() else {}
    current = {**as_dict(profile), **extra}
    previous = settings.get(step)
    if previous is not None and previous != current and (Path(run_dir) / f"{step}.jsonl").exists():
        changed = sorted(k for k in current.keys() | previous.keys() if current.get(k) != previous.get(k))
        raise RunDirConflict(
            f"{run_dir} already has a {step} made with other settings ({', '.join(changed)}); use a new --run-dir"
        )
    settings[step] = current
    write_json(path, settings)


def probe(profile: Profile, run_dir: str | os.PathLike, data: str | None = None) -> dict:
    """Chunk, probe and score the samples; writes `priors.jsonl` (METHOD.md section 2)."""
    from .generation import build_generator
    from .models import load_embedder
    from .probe import run_probe

    samples = load_samples(profile, data)
    if (Path(run_dir) / "rollout.jsonl").exists():
        raise RunDirConflict(f"{run_dir} already has a rollout; new priors would not match it. Use a new --run-dir")
    record_settings(run_dir, "priors", profile, data=str(data or profile.data))
    generator = build_generator(profile)
    embedder = load_embedder(profile.embedding_model, profile.trust_remote_code)
    return run_probe(samples, generator, HFTokenCounter(generator.tokenizer), embedder, profile, run_dir)


def rollout(profile: Profile, run_dir: str | os.PathLike, shard: str | None = None) -> dict:
    """The batched, resumable MAB rollout over `priors.jsonl`; writes `rollout.jsonl` (METHOD.md section 3)."""
    from .generation import build_generator
    from .rollout import run_rollout
    from .rollout import shard as shard_records

    priors_path = Path(run_dir) / "priors.jsonl"
    if not priors_path.exists():
        raise FileNotFoundError(f"{priors_path} is missing; run the probe step first")
    records = read_records(priors_path)
    shard_records(records, shard)
    record_settings(run_dir, "rollout", profile)
    return run_rollout(records, build_generator(profile), profile, run_dir, shard)


def merge(profile: Profile, run_dir: str | os.PathLike, shards: int) -> dict:
    """Merge the rollout shards of a run into `rollout.jsonl`."""
    from .rollout import merge_shards

    return merge_shards(run_dir, read_records(Path(run_dir) / "priors.jsonl"), shards, profile.top_k)

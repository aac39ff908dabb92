"""The paper's claim, measured: UCB with probe priors against other chunk-selection policies on the same samples.

Introduced in notebook 07. Every policy ("arm" of the study) rolls out the same samples with the
same number of rounds; all arms advance together, one batched generate call per round. The
measures come from `measures.py`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from .config import Profile
from .data import read_json, read_records, write_json, write_jsonl
from .embeddings import batch_priors, embed
from .errors import UserError
from .measures import arm_means, cumulative_regret, distinct_n, evidence_coverage, mean_pairwise_distance, pair_stats
from .runfolder import sha256, step_settings
from .runlock import writes_run_dir

STUDY: dict[str, tuple[str, str]] = {
    "ucb_probe_prior": ("ucb", "probe_similarity"),
    "ucb_query_prior": ("ucb", "query_similarity"),
    "ucb_random_prior": ("ucb", "random"),
    "random_k": ("random", "probe_similarity"),
    "greedy": ("greedy", "probe_similarity"),
    "full_context": ("full_context", "probe_similarity"),
}
"""Arm of the study -> (chunk-selection policy, prior kind); the first is the paper's."""


def arm_records(records: Sequence[dict], study: dict[str, tuple[str, str]], embedder: Any, seed: int) -> list[dict]:
    """One copy of every priors record per arm, id `arm/sample`, with that arm's prior kind recomputed."""
    copies = []
    for arm, (_, kind) in study.items():
        if kind == "probe_similarity":
            priors = [r["priors"] for r in records]
        else:
            anchors = [r["question"] for r in records]
            chunks = [r["chunks"] for r in records]
            priors = batch_priors(kind, embedder, chunks, anchors, seed, [r["id"] for r in records])
        copies += [
            {**r, "id": f"{arm}/{r['id']}", "priors": list(p), "prior_kind": kind} for r, p in zip(records, priors)
        ]
    return copies


def study_key(profile: Profile, priors_path: Path, samples: int | None, study: dict[str, tuple[str, str]]) -> dict:
    """Everything that changes the study's rollouts: rollout settings, embedder, samples, arms and priors file."""
    settings = {key: value for key, value in step_settings(profile, "rollout").items() if key != "policy"}
    settings |= {"embedding_model": profile.embedding_model, "samples": samples}
    return {
        **settings,
        "study": {arm: list(spec) for arm, spec in study.items()},
        "seeds": "common random numbers: one seed per sample and round, shared by every arm",
        "priors.jsonl": sha256(priors_path),
    }


def run_study(
    profile: Profile, run_dir: str | os.PathLike, samples: int | None, study: dict[str, tuple[str, str]] = STUDY
) -> list[dict]:
    """Roll out the first `samples` probed samples under every arm into `ablation/rollout.jsonl`.

    The rollouts are reused while every setting that changes them is the same (`ablation/settings.json`);
    the settings are written before the rollouts, so a crash in between only means rolling out again.
    """
    from .generation import build_generator
    from .models import load_embedder
    from .rollout import roll_batch

    folder = Path(run_dir) / "ablation"
    priors_path = Path(run_dir) / "priors.jsonl"
    if not priors_path.exists():
        raise UserError(f"{priors_path} is missing; run notebook 03 (or the probe step) first")
    key = study_key(profile, priors_path, samples, study)
    done = folder / "rollout.jsonl"
    if done.exists() and (folder / "settings.json").exists() and read_json(folder / "settings.json") == key:
        return read_records(done)
    done.unlink(missing_ok=True)
    write_json(folder / "settings.json", key)
    records = read_records(priors_path)[:samples]
    copies = arm_records(
        records, study, load_embedder(profile.embedding_model, profile.embedder_trust_remote_code), profile.seed
    )
    policies = [study[c["id"].split("/")[0]][0] for c in copies]
    samples_of = [c["id"].split("/", 1)[1] for c in copies]  # common random numbers: the arms share each seed
    with closing(build_generator(profile)) as generator:
        rollouts = roll_batch(
            copies, generator, profile, desc="ablation rounds", policies=policies, seed_ids=samples_of
        )
    write_jsonl(done, rollouts)
    return rollouts


def split_by_arm(rollouts: Sequence[dict]) -> dict[str, list[dict]]:
    """Rollout records grouped by arm (the prefix of their id), in study order."""
    arms: dict[str, list[dict]] = {}
    for record in rollouts:
        arm, _, sample = record["id"].partition("/")
        arms.setdefault(arm, []).append({**record, "id": sample})
    return arms


def regret_curves(rollouts: Sequence[dict], k: int) -> dict[str, np.ndarray]:
    """Per arm, cumulative regret by round (one row per sample); arm means pooled over every k-subset arm."""
    arms = split_by_arm(rollouts)
    subset_arms = [a for a, records in arms.items() if all(len(r["selected"]) <= k for r in records[0]["rounds"])]
    by_sample: dict[str, list[dict]] = {}
    for arm in subset_arms:
        for record in arms[arm]:
            by_sample.setdefault(record["id"], []).append(record)
    means = {sid: arm_means(runs, runs[0]["n_chunks"]) for sid, runs in by_sample.items()}
    return {
        arm: np.array(
            [
                cumulative_regret([r["selected"] for r in rec["rounds"]], means[rec["id"]], min(k, rec["n_chunks"]))
                for rec in records
            ]
        )
        for arm, records in arms.items()
    }


def measure(rollouts: Sequence[dict], embedder: Any, k: int, seed: int) -> dict[str, dict[str, float]]:
    """Every measure of every arm: pairs, diversity, evidence coverage (if known), reward and final regret."""
    regret = regret_curves(rollouts, k)
    table = {}
    for arm, records in split_by_arm(rollouts).items():
        responses = [[r["response"] for r in record["rounds"]] for record in records]
        distances = [mean_pairwise_distance(embed(embedder, texts)) for texts in responses]
        coverage = [share for share in map(evidence_coverage, records) if share is not None]
        table[arm] = {
            **pair_stats(records, seed),
            "distinct_2": float(np.mean([distinct_n(texts, 2) for texts in responses])),
            "embedding_distance": float(np.mean(distances)),
            **({"evidence_coverage": float(np.mean(coverage))} if coverage else {}),
            "mean_reward": float(np.mean([r["reward"] for record in records for r in record["rounds"]])),
            "final_regret": float(regret[arm][:, -1].mean()),
        }
    return table


@writes_run_dir("ablation")
def run_ablation(
    profile: Profile, run_dir: str | os.PathLike, samples: int | None, study: dict[str, tuple[str, str]] = STUDY
) -> dict[str, Any]:
    """Run the study, measure every arm, and write `ablation/measures.json`; returns the measures and regret curves."""
    from .models import load_embedder

    rollouts = run_study(profile, run_dir, samples, study)
    embedder = load_embedder(profile.embedding_model, profile.embedder_trust_remote_code)
    table = measure(rollouts, embedder, profile.top_k, profile.seed)
    write_json(Path(run_dir) / "ablation" / "measures.json", table)
    return {"measures": table, "regret": regret_curves(rollouts, profile.top_k)}

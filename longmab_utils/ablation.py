"""The paper's claim, measured: UCB with probe priors against other chunk-selection policies on the same samples.

Introduced in notebook 07. Every policy ("arm" of the study) rolls out the same samples with the
same number of rounds; all arms advance together, one batched generate call per round. The
measures come from `measures.py`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import ABLATION, ABLATION_DIFFERENCES, ABLATION_MEASURES, PRIORS, ROLLOUT, SETTINGS
from .config import Profile
from .data import read_json, read_records, write_json, write_jsonl
from .embeddings import batch_priors, embed
from .errors import UserError
from .evaluation import bootstrap_interval
from .measures import distinct_n, evidence_coverage, mean_pairwise_distance
from .metrics import pair_score
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
        PRIORS: sha256(priors_path),
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

    folder = Path(run_dir) / ABLATION
    priors_path = Path(run_dir) / PRIORS
    if not priors_path.exists():
        raise UserError(f"{priors_path} is missing; run notebook 03 (or the probe step) first")
    key = study_key(profile, priors_path, samples, study)
    done = folder / ROLLOUT
    if done.exists() and (folder / SETTINGS).exists() and read_json(folder / SETTINGS) == key:
        return read_records(done)
    done.unlink(missing_ok=True)
    write_json(folder / SETTINGS, key)
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


def sample_measures(record: dict, embedder: Any) -> dict[str, float]:
    """One sample's measures under one policy (NaN where undefined: pair scores without a pair, unknown evidence)."""
    responses = [r["response"] for r in record["rounds"]]
    scores = [pair_score(text, record["answer"]) for text in responses]
    has_pair = max(scores) > min(scores)  # select_pair's rule: its chosen scores max(scores), its rejected min
    coverage = evidence_coverage(record)
    return {
        "pair_yield": float(has_pair),
        "chosen_score": max(scores) if has_pair else math.nan,
        "rejected_score": min(scores) if has_pair else math.nan,
        "score_gap": max(scores) - min(scores) if has_pair else math.nan,
        "distinct_2": distinct_n(responses, 2),
        "embedding_distance": mean_pairwise_distance(embed(embedder, responses)),
        "evidence_coverage": math.nan if coverage is None else coverage,
        "mean_reward": float(np.mean([r["reward"] for r in record["rounds"]])),
    }


def per_sample(rollouts: Sequence[dict], embedder: Any) -> dict[str, dict[str, dict[str, float]]]:
    """Every arm's measures per sample: arm -> sample id -> measure -> value."""
    return {
        arm: {record["id"]: sample_measures(record, embedder) for record in records}
        for arm, records in split_by_arm(rollouts).items()
    }


def summarise(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    """An arm's table row: each measure's mean over the samples where it is defined (evidence: left out if never)."""
    table = {}
    for measure in next(iter(rows.values())):
        values = [row[measure] for row in rows.values() if not math.isnan(row[measure])]
        if values or measure != "evidence_coverage":
            table[measure] = float(np.mean(values)) if values else math.nan
    return table


DIFFERENCES = ("pair_yield", "score_gap", "evidence_coverage", "distinct_2", "embedding_distance", "mean_reward")
"""The measures whose paired differences (the paper's arm minus each other arm) get bootstrap intervals."""


def paired_differences(
    samples: dict[str, dict[str, dict[str, float]]], reference: str, measures: Sequence[str] = DIFFERENCES
) -> dict[str, dict]:
    """Per other arm and measure: the mean over samples of `reference` minus that arm (notebook 07, equation (3)),
    with a bootstrap 95% interval.

    Common random numbers make the per-sample difference the fair unit; a sample where either value is
    undefined (no pair, unknown evidence) is left out of that measure, and `n` says how many remain.
    """
    result: dict[str, dict] = {}
    for arm, rows in samples.items():
        if arm == reference:
            continue
        result[arm] = {}
        for measure in measures:
            pairs = [(samples[reference][sid][measure], row[measure]) for sid, row in rows.items()]
            differences = [a - b for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
            if differences:
                low, high = bootstrap_interval(differences)
                result[arm][measure] = {
                    "mean": float(np.mean(differences)),
                    "low": low,
                    "high": high,
                    "n": len(differences),
                }
    return result


def measure(rollouts: Sequence[dict], embedder: Any) -> dict[str, Any]:
    """Every arm's measures averaged over samples (`table`), and the paper's arm minus each other (`differences`)."""
    samples = per_sample(rollouts, embedder)
    return {
        "table": {arm: summarise(rows) for arm, rows in samples.items()},
        "differences": paired_differences(samples, next(iter(samples))),
    }


@writes_run_dir("ablation")
def run_ablation(
    profile: Profile, run_dir: str | os.PathLike, samples: int | None, study: dict[str, tuple[str, str]] = STUDY
) -> dict[str, Any]:
    """Run the study, measure every arm, write `ablation/measures.json` and `ablation/differences.json`; return both."""
    from .models import load_embedder

    rollouts = run_study(profile, run_dir, samples, study)
    result = measure(rollouts, load_embedder(profile.embedding_model, profile.embedder_trust_remote_code))
    write_json(Path(run_dir) / ABLATION / ABLATION_MEASURES, result["table"])
    write_json(Path(run_dir) / ABLATION / ABLATION_DIFFERENCES, result["differences"])
    return {"measures": result["table"], "differences": result["differences"]}

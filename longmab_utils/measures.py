"""What a chunk-selection policy's rollout is worth for preference optimisation, measured per policy.

Introduced in notebook 07. Every function takes rollout records (`rollout.jsonl`: per sample its
`answer`, `n_chunks`, `evidence_chunks` and `rounds` with `selected`, `reward`, `response`) or
plain values, so each measure can be checked on hand-made inputs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from .metrics import pair_score
from .pairs import select_pair


def pair_stats(records: Sequence[dict], seed: int) -> dict[str, float]:
    """Pair yield (share of samples with a pair) and mean chosen, rejected and gap of pair scores."""
    rng = random.Random(seed)
    chosen, rejected = [], []
    for record in records:
        responses = [r["response"] for r in record["rounds"]]
        picked = select_pair(responses, record["answer"], rng)
        if picked is not None:
            chosen.append(pair_score(responses[picked[0]], record["answer"]))
            rejected.append(pair_score(responses[picked[1]], record["answer"]))
    mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
    return {
        "pair_yield": len(chosen) / len(records) if records else float("nan"),
        "chosen_score": mean(chosen),
        "rejected_score": mean(rejected),
        "score_gap": mean([c - r for c, r in zip(chosen, rejected)]),
    }


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of the texts (lower-cased whitespace tokens); 0 when there are none."""
    grams = [tuple(words[i : i + n]) for words in (t.lower().split() for t in texts) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def mean_pairwise_distance(vectors: np.ndarray) -> float:
    """Mean cosine distance (1 - cosine similarity) over all pairs of rows; 0 for fewer than two rows."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) < 2:
        return 0.0
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    upper = np.triu_indices(len(vectors), k=1)
    return float(np.mean(1.0 - similarity[upper]))


def covers_evidence(selected: Sequence[int], evidence_chunks: Sequence[Sequence[int]]) -> bool:
    """True when every evidence sentence lies in at least one selected chunk (False without known evidence)."""
    chosen = set(selected)
    return bool(evidence_chunks) and all(chosen & set(group) for group in evidence_chunks)


def evidence_coverage(record: dict) -> float | None:
    """Share of a sample's rounds whose selection holds every evidence sentence; None when its evidence is unknown."""
    if not record.get("evidence_chunks"):
        return None
    rounds = record["rounds"]
    return sum(covers_evidence(r["selected"], record["evidence_chunks"]) for r in rounds) / len(rounds)


def arm_means(runs: Sequence[dict], n_chunks: int) -> np.ndarray:
    """Mean reward of each arm over every round that selected it, pooled over rollouts of one sample (NaN if never)."""
    totals, counts = np.zeros(n_chunks), np.zeros(n_chunks)
    for record in runs:
        for r in record["rounds"]:
            totals[r["selected"]] += r["reward"]
            counts[r["selected"]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def cumulative_regret(selections: Sequence[Sequence[int]], means: np.ndarray, k: int) -> np.ndarray:
    """Cumulative regret per round against the best fixed k-subset, a subset valued at the mean of its arm means.

    Arms never observed count as 0. This is the Bernoulli-arms model of notebook 02 with the arm
    means estimated in hindsight from the rollouts themselves.
    """
    means = np.nan_to_num(np.asarray(means, dtype=np.float64), nan=0.0)
    best = float(np.mean(np.sort(means)[-k:]))
    return np.cumsum([best - float(np.mean(means[list(s)])) for s in selections])

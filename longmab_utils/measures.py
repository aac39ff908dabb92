"""What a chunk-selection policy's rollout is worth for preference optimisation, measured per policy.

Introduced in notebook 07. Every function takes rollout records (`rollout.jsonl`: per sample its
`answer`, `n_chunks`, `evidence_chunks` and `rounds` with `selected`, `reward`, `response`) or
plain values, so each measure can be checked on hand-made inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of the texts (lower-cased whitespace tokens; notebook 07, equation (1) for
    n = 2); 0 when there are none."""
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
    """Share of a sample's rounds whose selection holds every evidence sentence (notebook 07, equation (2)); None
    when its evidence is unknown."""
    if not record.get("evidence_chunks"):
        return None
    rounds = record["rounds"]
    return sum(covers_evidence(r["selected"], record["evidence_chunks"]) for r in rounds) / len(rounds)

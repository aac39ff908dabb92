"""Arm priors from embeddings: how similar each chunk is to the probe (or the question).

Introduced in notebook 03 (METHOD.md section 2). Embeddings are L2-normalised, so a dot product is
the cosine similarity; the reference uses MiniCPM-Embedding, the CPU profiles all-MiniLM-L6-v2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .seeds import derive_seed

PRIOR_KINDS = ("probe_similarity", "query_similarity", "random")


def embed(embedder: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised embeddings, one row per text."""
    vectors = embedder.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float64)


def cosine_priors(chunk_vectors: np.ndarray, anchor_vector: np.ndarray) -> list[float]:
    """Cosine similarity of each (normalised) chunk vector to the (normalised) anchor vector (notebook 03, equation
    (1))."""
    return (chunk_vectors @ anchor_vector).tolist()


def random_priors(n_chunks: int, seed: int, sample_id: str) -> list[float]:
    """Uniform [0, 1) priors, seeded by the run seed and the sample id (independent of batching)."""
    rng = np.random.default_rng(derive_seed(seed, sample_id, "random-prior"))
    return rng.random(n_chunks).tolist()


def batch_priors(
    kind: str,
    embedder: Any,
    chunk_lists: Sequence[Sequence[str]],
    anchors: Sequence[str],
    seed: int,
    ids: Sequence[str],
) -> list[list[float]]:
    """Priors for many samples at once: `anchors` are the probes or the questions, matching `kind`."""
    if kind not in PRIOR_KINDS:
        raise ValueError(f"unknown prior {kind!r}; choose one of {', '.join(PRIOR_KINDS)}")
    if kind == "random":
        return [random_priors(len(chunks), seed, sample_id) for chunks, sample_id in zip(chunk_lists, ids)]
    flat = [chunk for chunks in chunk_lists for chunk in chunks]
    chunk_vectors = embed(embedder, flat)
    anchor_vectors = embed(embedder, anchors)
    offsets = np.cumsum([0, *map(len, chunk_lists)])
    return [
        cosine_priors(chunk_vectors[start:end], anchor)
        for start, end, anchor in zip(offsets[:-1], offsets[1:], anchor_vectors)
    ]

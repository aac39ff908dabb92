"""Derived seeds: every random draw of a run is seeded from (run seed, sample id, round, purpose).

Introduced in notebook 03. Seeds come from numpy's SeedSequence, so any run seed in [0, 2**63) gives valid,
independent seeds for numpy, torch and vLLM, and a sample's draws do not depend on which batch, shard or
process it landed in.
"""

from __future__ import annotations

import zlib

import numpy as np

MAX_SEED = 2**63
"""Seeds are integers in [0, MAX_SEED): what torch, numpy and vLLM all accept."""


def derive_seed(run_seed: int, *parts: str | int) -> int:
    """A seed in [0, 2**63) fixed by the run seed and the parts (sample id, round, purpose...)."""
    if not 0 <= run_seed < MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {run_seed}")
    key = tuple(zlib.crc32(p.encode("utf-8")) if isinstance(p, str) else int(p) for p in parts)
    state = np.random.SeedSequence(entropy=run_seed, spawn_key=key).generate_state(1, np.uint64)[0]
    return int(state) % MAX_SEED

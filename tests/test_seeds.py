"""Derived seeds: valid for every backend, fixed by their parts, independent across parts."""

import numpy as np
import pytest
import torch

from longmab_utils.seeds import MAX_SEED, derive_seed


@pytest.mark.parametrize("run_seed", [0, 42, 18_300, 2**40, MAX_SEED - 1])
def test_every_run_seed_gives_seeds_that_every_backend_accepts(run_seed):
    seed = derive_seed(run_seed, "sample-7", 3, "rollout")
    assert 0 <= seed < MAX_SEED and seed == derive_seed(run_seed, "sample-7", 3, "rollout")
    torch.Generator().manual_seed(seed)
    np.random.default_rng(seed)


def test_parts_change_the_seed():
    seeds = {derive_seed(42, sample, rnd, purpose) for sample in "ab" for rnd in (1, 2) for purpose in ("x", "y")}
    assert len(seeds) == 8 and derive_seed(42, "a") != derive_seed(43, "a")


@pytest.mark.parametrize("bad", [-1, MAX_SEED])
def test_seeds_outside_the_range_are_refused(bad):
    with pytest.raises(ValueError, match="2\\*\\*63"):
        derive_seed(bad, "a")

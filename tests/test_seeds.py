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


def test_two_purposes_draw_independent_streams():
    # Random priors and the random-k policy of one sample used to share a stream, so random-k picked the top
    # random-prior arm 30.4% of the time instead of 1/3; with a purpose each, the two are independent.
    from longmab_utils.bandit import make_policy
    from longmab_utils.embeddings import random_priors

    n = 6000
    hits = 0
    for i in range(n):
        priors = random_priors(3, 42, f"s{i}")
        policy = make_policy("random", priors, np.random.default_rng(derive_seed(42, f"s{i}", "policy")))
        hits += int(policy.select(1)[0] == int(np.argmax(priors)))
    assert abs(hits / n - 1 / 3) < 4 * (1 / 3 * 2 / 3 / n) ** 0.5  # the old bias (0.029) is 4.8 standard errors

"""The UCB sampler, its vectorised batch version, the baselines and the regret simulator."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longmab_utils.bandit import (
    POLICIES,
    BatchUCB,
    BernoulliArms,
    MultiHopArms,
    UCBChunkSampler,
    make_policy,
    simulate_regret,
)

priors_st = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=12)


def test_first_round_takes_the_top_k_priors():
    sampler = UCBChunkSampler([0.1, 0.9, 0.5, 0.7])
    assert sampler.select(2).tolist() == [1, 3]
    assert sampler.t == 1


def test_selection_is_ascending_and_capped_at_the_arm_count():
    sampler = UCBChunkSampler([0.3, 0.2, 0.9])
    assert sampler.select(10).tolist() == [0, 1, 2]


def test_exact_update_rule():
    sampler = UCBChunkSampler([0.5, 0.2])
    sampler.select(1)
    sampler.update([0], 1.0)
    assert sampler.counts.tolist() == [1, 0]
    assert sampler.values[0] == pytest.approx(0.5 + (1.0 - 0.5) / 2)
    sampler.select(1)
    assert sampler.scores()[1] > 1000, "an unpulled arm carries a huge bonus after round 1"


def test_ucb_scores_are_the_numbers_worked_by_hand():
    # priors (0.5, 0.2, 0.9), k = 1. Round 1: ln 1 = 0, so the scores are the priors and arm 2 is pulled; reward 0
    # gives c = 1 and v = 0.9 + (0 - 0.9) / (1 + 1) = 0.45. Round 2: 2 ln 2 = 1.3862943611198906, so the unpulled
    # arms score v + sqrt(1.3862943611198906 / 1e-6) = v + 1177.4100225154746 and arm 2 scores
    # 0.45 + sqrt(1.3862943611198906 / 1.000001) = 0.45 + 1.177409433810905.
    expected = [1177.9100225154746, 1177.6100225154746, 1.627409433810905]
    sampler, batch = UCBChunkSampler([0.5, 0.2, 0.9]), BatchUCB([[0.5, 0.2, 0.9], [0.5, 0.2, 0.9]])
    assert sampler.select(1).tolist() == [2] and [s.tolist() for s in batch.select(1)] == [[2], [2]]
    sampler.update([2], 0.0)
    batch.update([np.array([2]), np.array([2])], [0.0, 0.0])
    assert sampler.values.tolist() == [0.5, 0.2, 0.45] and sampler.counts.tolist() == [0, 0, 1]
    sampler.select(1)
    batch.select(1)
    np.testing.assert_allclose(sampler.scores(), expected, rtol=1e-12)
    np.testing.assert_allclose(batch.scores(), [expected, expected], rtol=1e-12)


def reference_trajectory(priors: list[float], k: int, rewards: list[float]) -> list[tuple[list[int], list[float]]]:
    """The reference's sampler transcribed from METHOD.md section 3, one scalar at a time (ties: lower index)."""
    values, counts, t, trajectory = list(priors), [0] * len(priors), 0, []
    for reward in rewards:
        t += 1
        scores = [values[i] + math.sqrt(2 * math.log(t) / (counts[i] + 1e-6)) for i in range(len(values))]
        chosen = sorted(sorted(range(len(values)), key=lambda i: (-scores[i], i))[: min(k, len(values))])
        for i in chosen:
            counts[i] += 1
            values[i] += (reward - values[i]) / (counts[i] + 1)
        trajectory.append((chosen, list(values)))
    return trajectory


@given(st.integers(1, 12), st.integers(1, 5), st.integers(0, 2**32 - 1))
@settings(max_examples=200)
def test_samplers_replay_the_reference_trajectory(n, k, seed):
    rng = np.random.default_rng(seed)
    priors, rewards = rng.random(n).tolist(), rng.random(20).tolist()  # distinct almost surely: no ties
    single, batch = UCBChunkSampler(priors), BatchUCB([priors])
    for (chosen, values), reward in zip(reference_trajectory(priors, k, rewards), rewards):
        picked, [batch_picked] = single.select(k), batch.select(k)
        assert picked.tolist() == chosen == batch_picked.tolist()
        single.update(picked, reward)
        batch.update([batch_picked], [reward])
        np.testing.assert_allclose(single.values, values, rtol=1e-12)
        np.testing.assert_allclose(batch.values[0], values, rtol=1e-12)


@given(priors_st, st.integers(1, 5), st.integers(0, 2**32 - 1))
@settings(max_examples=200)
def test_value_is_prior_plus_rewards_over_count_plus_one(priors, k, seed):
    rng = np.random.default_rng(seed)
    sampler = UCBChunkSampler(priors)
    totals = np.zeros(len(priors))
    for _ in range(15):
        chosen = sampler.select(k)
        reward = float(rng.random())
        sampler.update(chosen, reward)
        totals[chosen] += reward
    np.testing.assert_allclose(
        sampler.values, (np.array(priors) + totals) / (sampler.counts + 1), rtol=1e-9, atol=1e-12
    )


@given(priors_st, st.integers(1, 5), st.integers(0, 2**32 - 1))
@settings(max_examples=200)
def test_every_arm_is_pulled_before_any_repeats(priors, k, seed):
    rng = np.random.default_rng(seed)
    sampler = UCBChunkSampler(priors)
    n, k_eff = len(priors), min(k, len(priors))
    rounds_to_cover = -(-n // k_eff)
    for _ in range(rounds_to_cover):
        sampler.update(sampler.select(k), float(rng.random()))
    assert sampler.counts.min() >= 1
    assert sampler.counts.max() <= 2, "no arm is pulled a second time before all have been tried"
    if n % k_eff == 0:
        assert (sampler.counts == 1).all()


@given(st.lists(priors_st, min_size=1, max_size=8), st.integers(1, 5), st.integers(0, 2**32 - 1))
@settings(max_examples=150)
def test_batch_ucb_equals_independent_samplers(priors, k, seed):
    rng = np.random.default_rng(seed)
    batch = BatchUCB(priors)
    singles = [UCBChunkSampler(p) for p in priors]
    for _ in range(12):
        selections = batch.select(k)
        rewards = rng.random(len(priors)).tolist()
        for single, selection, reward in zip(singles, selections, rewards):
            assert single.select(k).tolist() == selection.tolist()
            single.update(selection, reward)
        batch.update(selections, rewards)
        for i, single in enumerate(singles):
            assert batch.sample_values(i).tolist() == single.values.tolist()


def test_batch_ucb_rejects_mismatched_updates():
    batch = BatchUCB([[0.1, 0.2], [0.3]])
    selections = batch.select(1)
    with pytest.raises(ValueError, match="one selection and one reward per sample"):
        batch.update(selections, [1.0])


def test_bad_priors_and_k_are_rejected():
    with pytest.raises(ValueError, match="non-empty"):
        UCBChunkSampler([])
    with pytest.raises(ValueError, match="k must be"):
        UCBChunkSampler([0.1]).select(0)
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("oracle", [0.1])


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_selects_valid_arms_and_tracks_values(name):
    policy = make_policy(name, [0.2, 0.8, 0.5, 0.1, 0.4], np.random.default_rng(3))
    for _ in range(6):
        chosen = policy.select(2)
        assert chosen.tolist() == sorted(set(chosen.tolist()))
        assert len(chosen) == (5 if name == "full_context" else 2)
        policy.update(chosen, 0.5)
    assert policy.counts.sum() == 6 * len(chosen)


def test_greedy_never_explores_and_random_does():
    greedy = make_policy("greedy", [0.9, 0.1, 0.1, 0.1])
    random_k = make_policy("random", [0.9, 0.1, 0.1, 0.1], np.random.default_rng(0))
    for _ in range(20):
        greedy.update(greedy.select(1), 0.5)
        random_k.update(random_k.select(1), 0.5)
    assert greedy.counts.tolist() == [20, 0, 0, 0]
    assert (random_k.counts > 0).all()


def test_ucb_has_lower_regret_than_random_and_greedy_on_a_misleading_prior():
    env = BernoulliArms(np.array([0.1, 0.2, 0.3, 0.9, 0.8, 0.2]))
    misleading = [0.9, 0.8, 0.7, 0.1, 0.1, 0.1]

    def final(name):
        return simulate_regret(lambda rng: make_policy(name, misleading, rng), env, k=2, rounds=200, runs=20)[
            :, -1
        ].mean()

    assert final("ucb") < final("random")
    assert final("ucb") < final("greedy")


def test_multihop_environment_rewards_only_full_evidence():
    env = MultiHopArms(n_arms=6, gold=(1, 4))
    assert env.expected_reward(np.array([1, 4])) == env.p_hit
    assert env.expected_reward(np.array([1, 2])) == env.p_miss
    holds_both = simulate_regret(lambda rng: Fixed([1, 4, 5]), env, k=3, rounds=10, runs=2)
    misses_one = simulate_regret(lambda rng: Fixed([0, 1, 2]), env, k=3, rounds=10, runs=2)
    assert holds_both.shape == (2, 10) and (holds_both == 0).all()
    assert misses_one[:, -1] == pytest.approx([10 * (env.p_hit - env.p_miss)] * 2)  # the gap, every round


class Fixed:
    """A policy that selects the same arms every round."""

    def __init__(self, arms: list[int]):
        self.arms = np.array(arms)

    def select(self, k: int) -> np.ndarray:
        """The fixed arms."""
        return self.arms

    def update(self, selection: np.ndarray, reward: float) -> None:
        """Learns nothing."""

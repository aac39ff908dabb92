"""The ablation measures on hand-made rollouts with answers worked out by hand."""

from itertools import combinations

import numpy as np
import pytest

from longmab_utils import measures

RIGHT, WRONG, PARTIAL = "Reasoning: it says so.\nAnswer: Vell", "Reasoning: no.\nAnswer: Dorn", "Answer: Vell Press"


def record(responses, answer="Vell", selections=None, rewards=None, evidence=((1,), (3,)), n_chunks=5):
    """A rollout record with one round per response."""
    selections = selections or [[0, 1]] * len(responses)
    rewards = rewards or [0.0] * len(responses)
    rounds = [
        {"round": i + 1, "selected": list(s), "reward": r, "response": text}
        for i, (text, s, r) in enumerate(zip(responses, selections, rewards))
    ]
    return {"answer": answer, "n_chunks": n_chunks, "evidence_chunks": [list(e) for e in evidence], "rounds": rounds}


def test_pair_stats_yield_scores_and_gap():
    records = [record([RIGHT, WRONG]), record([WRONG, WRONG]), record([PARTIAL, WRONG])]
    stats = measures.pair_stats(records, seed=0)
    # PARTIAL: SubEM 1, F1 of "vell press" vs "vell" = 2/3 -> pair score 5/6
    assert stats["pair_yield"] == pytest.approx(2 / 3)
    assert stats["chosen_score"] == pytest.approx((1 + 5 / 6) / 2)
    assert stats["rejected_score"] == 0.0
    assert stats["score_gap"] == pytest.approx((1 + 5 / 6) / 2)


def test_pair_stats_without_pairs_is_nan_not_zero():
    stats = measures.pair_stats([record([WRONG, WRONG])], seed=0)
    assert stats["pair_yield"] == 0.0 and np.isnan(stats["chosen_score"]) and np.isnan(stats["score_gap"])


def test_distinct_n_counts_unique_ngrams_over_all_texts():
    assert measures.distinct_n(["a b c", "a b d"], n=2) == pytest.approx(3 / 4)  # ab, bc, ab, bd
    assert measures.distinct_n(["A b", "a B"], n=1) == pytest.approx(2 / 4)
    assert measures.distinct_n(["one"], n=2) == 0.0


def test_mean_pairwise_distance_of_known_vectors():
    assert measures.mean_pairwise_distance(np.array([[1.0, 0.0], [0.0, 2.0]])) == pytest.approx(1.0)
    assert measures.mean_pairwise_distance(np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])) == pytest.approx(2 / 3)
    assert measures.mean_pairwise_distance(np.array([[1.0, 1.0]])) == 0.0


def test_evidence_coverage_needs_every_sentence_in_some_selected_chunk():
    assert measures.covers_evidence([1, 3], [[1], [3]])
    assert measures.covers_evidence([2, 4], [[1, 2], [4]])  # overlap: sentence 1 sits in chunks 1 and 2
    assert not measures.covers_evidence([1, 2], [[1], [3]])
    assert not measures.covers_evidence([0, 1, 2], [])
    sample = record(["x"] * 4, selections=[[1, 3], [0, 1], [3, 1], [2, 4]])
    assert measures.evidence_coverage(sample) == pytest.approx(2 / 4)


def test_evidence_coverage_is_unknown_without_evidence():
    assert measures.evidence_coverage(record(["x"] * 2, evidence=())) is None


def test_arm_means_pool_every_rollout_of_a_sample():
    first = record(["x", "y"], selections=[[0, 1], [1, 2]], rewards=[1.0, 0.0], n_chunks=4)
    second = record(["z"], selections=[[0, 2]], rewards=[0.5], n_chunks=4)
    means = measures.arm_means([first, second], 4)
    assert means[:3] == pytest.approx([0.75, 0.5, 0.25]) and np.isnan(means[3])


def test_cumulative_regret_against_the_best_fixed_subset_in_hindsight():
    means = np.array([0.9, 0.1, 0.5, np.nan])
    regret = measures.cumulative_regret([[0, 2], [1, 3], [0, 2]], means, k=2)
    assert regret == pytest.approx([0.0, 0.7 - 0.05, 0.7 - 0.05])
    brute = max(np.mean(np.nan_to_num(means)[list(s)]) for s in combinations(range(4), 2))
    assert regret[1] == pytest.approx(brute - 0.05)

"""The exercises' worked answers (course/worked.py) agree with the kit's functions they are checked against."""

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longmab_utils.bandit import MultiHopArms, UCBChunkSampler, make_policy, simulate_regret
from longmab_utils.chunking import chunk_spans
from longmab_utils.course import worked
from longmab_utils.evaluation import sign_test
from longmab_utils.measures import distinct_n, evidence_coverage
from longmab_utils.metrics import exact_match, f1_score, substring_exact_match
from longmab_utils.pairs import middle_truncate


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=30), st.integers(5, 80), st.integers(0, 3))
def test_the_walk_counts_the_chunks_of_chunk_spans_without_the_merge(counts, chunk_size, overlap):
    assert worked.chunks_by_walk(counts, chunk_size, overlap) == len(chunk_spans(counts, chunk_size, overlap, 1))


def test_the_toy_walks_match_the_chunker():
    counts = [5, 5, 3, 8]
    assert worked.toy_chunks(merge=False) == len(chunk_spans(counts, 4, 1, 1))
    assert worked.toy_chunks(merge=True) == len(chunk_spans(counts, 4, 1, 3))


def test_the_budget_after_an_overlap_subtracts_the_carried_pieces():
    words = lambda text: len(text.split())  # noqa: E731
    assert worked.budget_after_overlap(20, "One two three. Four five. Six.", 2, words) == 20 - 3


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=3, max_size=8), st.data())
def test_ucb_scores_and_picks_match_the_sampler(priors, data):
    sampler = UCBChunkSampler(priors)
    for _ in range(data.draw(st.integers(1, 6))):
        sampler.update(sampler.select(2), data.draw(st.floats(0, 1)))
    now = [worked.ucb_score(v, c, sampler.t) for v, c in zip(sampler.values, sampler.counts)]
    assert np.allclose(now, sampler.scores(), rtol=1e-9)
    t = sampler.t + 1  # the round the next select plays
    values, counts = sampler.values.tolist(), sampler.counts.tolist()
    assert worked.ucb_pick(values, counts, t) == int(copy.deepcopy(sampler).select(1)[0])
    assert worked.ucb_selection(values, counts, t, 2) == sampler.select(2).tolist()


@pytest.mark.parametrize(("arms", "k"), [(10, 4), (7, 1), (6, 3), (5, 5)])
def test_the_sweep_length_is_the_samplers(arms, k):
    sampler = UCBChunkSampler(np.linspace(0, 1, arms))
    while (sampler.counts == 0).any():
        sampler.update(sampler.select(k), 0.0)
    assert worked.sweep_length(arms, k) == sampler.t


def test_the_value_counts_the_prior_as_one_observation():
    arm = UCBChunkSampler([0.6])
    for reward in (1.0, 0.0, 1.0):
        arm.update([0], reward)
    assert worked.value_after(0.6, [1.0, 0.0, 1.0]) == pytest.approx(float(arm.values[0]))


def test_showing_every_arm_has_no_regret():
    env = MultiHopArms(6, gold=(1, 4))
    regret = simulate_regret(lambda r: make_policy("ucb", [0.5] * 6, r), env, 6, 20, 3, 0)
    assert worked.regret_with_every_arm() == pytest.approx(float(regret[:, -1].mean()), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60))
def test_kept_tokens_is_middle_truncations_length(length, budget):
    assert worked.kept_tokens(length, budget) == len(middle_truncate(list(range(length)), budget))


def test_evidence_kept_counts_the_spans_inside_the_head_or_tail():
    spans = [(0, 4), (8, 12), (16, 20)]  # 20 tokens, budget 9: head 0-4, tail 16-20
    assert worked.evidence_kept(spans, 20, 9) == 2 and worked.evidence_kept(spans, 20, 20) == 3


def test_the_dpo_pieces_by_hand():
    assert worked.dpo_term(5.0, 0.1) == pytest.approx(-math.log(1 / (1 + math.exp(-0.5))))
    assert worked.rescaled_margin(0.2, 0.1, 0.5) == pytest.approx(1.0)
    assert worked.mean_nll([-1.0, -3.0]) == 2.0 and worked.lora_parameters(576, 192, 8) == 8 * 768
    assert worked.first_step_loss(0.5, 2.0) == pytest.approx(math.log(2) + 1.0)


def test_the_metrics_by_hand_match_the_kits():
    assert worked.f1_from_counts(1, 1, 2) == pytest.approx(f1_score("Vantecki", "Peto Vantecki"))
    answer = "It was founded in 1486."
    assert worked.em_and_subem("it was founded in 1486", "1486") == (
        exact_match(answer, "1486"),
        substring_exact_match(answer, "1486"),
    )
    assert worked.points_per_item(3, 4) == pytest.approx(100 / 12)


@pytest.mark.parametrize(("wins", "losses"), [(3, 0), (0, 3), (3, 1), (5, 5), (7, 2), (0, 0), (1, 0)])
def test_the_enumerated_sign_test_is_the_kits(wins, losses):
    assert worked.sign_test_by_enumeration(wins, losses) == pytest.approx(sign_test(wins, losses))


def test_the_average_of_the_first_items():
    rows = {"a": [{"f1": 1.0}, {"f1": 0.0}, {"f1": 1.0}], "b": [{"f1": 0.5}, {"f1": 0.5}]}
    assert worked.average_of_first(rows, 2) == pytest.approx(100 * (0.5 + 0.5) / 2)


def test_the_ablation_measures_by_hand_match_the_kits():
    texts = ["The cat sat", "the cat ran", "a dog"]
    assert worked.distinct_bigrams([t.lower() for t in texts]) == pytest.approx(distinct_n(texts, 2))
    selections = [[1, 3], [0, 1], [3, 4], [1, 3]]
    record = {"evidence_chunks": [[1], [3]], "rounds": [{"selected": s} for s in selections]}
    assert worked.coverage(selections, {1, 3}) == evidence_coverage(record)
    assert worked.mean_difference([1, 1, 0], [0, 1, 1]) == 0
    assert worked.best_arm({"a": 0.5, "b": 0.5 + 1e-12, "c": 0.1}) == "a"  # a tie to 9 decimals: the first

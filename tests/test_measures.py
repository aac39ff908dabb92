"""The ablation measures on hand-made rollouts with answers worked out by hand."""

import numpy as np
import pytest

from longmab_utils import measures


def record(responses, answer="Vell", selections=None, rewards=None, evidence=((1,), (3,)), n_chunks=5):
    """A rollout record with one round per response."""
    selections = selections or [[0, 1]] * len(responses)
    rewards = rewards or [0.0] * len(responses)
    rounds = [
        {"round": i + 1, "selected": list(s), "reward": r, "response": text}
        for i, (text, s, r) in enumerate(zip(responses, selections, rewards))
    ]
    return {"answer": answer, "n_chunks": n_chunks, "evidence_chunks": [list(e) for e in evidence], "rounds": rounds}


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

import warnings

import numpy as np
import pytest

from longmab_utils.chunking import FewArmsWarning
from longmab_utils.config import get_profile
from longmab_utils.data import read_records
from longmab_utils.embeddings import batch_priors, cosine_priors, random_priors
from longmab_utils.probe import build_priors, evidence_chunks, is_valid_probe, run_probe


@pytest.mark.parametrize(
    ("probe", "gold", "valid"),
    [
        ("Step 1: the doc says so. The answer is River Pava.", "River Pava", True),
        ("THE ANSWER IS the river pava, clearly", "River Pava", True),
        ("the answer is Pava", "River Pava", True),
        ("It was Harvstead. The answer is Lorn.", "Harvstead", False),
        ("No marker here, River Pava.", "River Pava", False),
        ("The answer is", "River Pava", False),
        ("The answer is A. Later: the answer is Harvstead!", "Harvstead", True),
    ],
)
def test_probe_validity_rule(probe, gold, valid):
    assert is_valid_probe(probe, gold) is valid


def test_evidence_chunks_lists_every_chunk_holding_each_sentence():
    chunks = ["A b. C d.", "C d. E f.", "G h."]
    assert evidence_chunks(chunks, ["C d.", "G h.", "Z."]) == [[0, 1], [2], []]


class FakeEmbedder:
    """Bag-of-letters vectors: texts sharing letters are similar."""

    def encode(self, texts, normalize_embeddings=True, **_):
        vectors = np.array([[text.lower().count(c) + 1e-3 for c in "abcdefghijklmnopqrstuvwxyz"] for text in texts])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_cosine_priors_are_dot_products_of_normalised_vectors():
    chunks = np.array([[1.0, 0.0], [0.6, 0.8]])
    assert cosine_priors(chunks, np.array([0.6, 0.8])) == pytest.approx([0.6, 1.0])


def test_random_priors_are_seeded_by_run_and_sample_not_by_batch():
    a = batch_priors("random", None, [["x"] * 3, ["y"] * 2], ["", ""], 7, ["s1", "s2"])
    b = batch_priors("random", None, [["y"] * 2], [""], 7, ["s2"])
    assert a[1] == b[0] == random_priors(2, 7, "s2")
    assert all(0 <= v < 1 for v in a[0]) and a[0] != random_priors(3, 8, "s1")


def test_probe_priors_rank_the_chunk_that_matches_the_probe_first():
    priors = batch_priors("probe_similarity", FakeEmbedder(), [["zzz yyy", "aaa bbb"]], ["aab"], 0, ["s"])
    assert priors[0][1] > priors[0][0]


SAMPLES = [
    {"id": "a", "question": "qqq?", "answer": "Alpha", "evidence": ["aaa."]},
    {"id": "b", "question": "www?", "answer": "Beta", "evidence": []},
]
CHUNKS = [["aaa.", "zzz."], ["www.", "bbb."]]
PROBES = ["The answer is Alpha.", "I do not know."]


def test_samples_without_a_valid_probe_are_dropped_and_counted():
    profile = get_profile("smoke", {"keep_invalid_probes": False})
    records, stats = build_priors(SAMPLES, CHUNKS, PROBES, FakeEmbedder(), profile)
    assert [r["id"] for r in records] == ["a"]
    assert stats["valid_probes"] == 1 and stats["dropped_invalid_probe"] == 1
    assert records[0]["evidence_chunks"] == [[0]] and records[0]["prior_kind"] == "probe_similarity"


def test_keep_option_gives_invalid_probes_query_priors():
    profile = get_profile("smoke", {"keep_invalid_probes": True})
    records, stats = build_priors(SAMPLES, CHUNKS, PROBES, FakeEmbedder(), profile)
    assert [r["prior_kind"] for r in records] == ["probe_similarity", "query_similarity"]
    assert stats["kept_with_query_prior"] == 1
    assert records[1]["priors"][0] > records[1]["priors"][1]


def gold_probes(samples: list[dict]) -> list[str]:
    """Probes that always state the gold answer."""
    return [f"The answer is {s['answer']}." for s in samples]


def words(text: str) -> int:
    """Whitespace tokens."""
    return len(text.split())


def user_samples(sentences: int) -> list[dict]:
    """Samples in the minimal user format: no `evidence` field."""
    context = " ".join(f"Sentence {i} is about the river Alpha." for i in range(sentences))
    return [{"id": str(i), "question": "Which river?", "answer": "Alpha", "context": context} for i in range(3)]


def test_probe_warns_when_the_median_sample_has_no_more_chunks_than_top_k(tmp_path):
    profile = get_profile("smoke", {"chunk_size": 20, "top_k": 2})
    with pytest.warns(FewArmsWarning, match="nothing to choose"):
        run_probe(user_samples(4), gold_probes(user_samples(4)), words, FakeEmbedder(), profile, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewArmsWarning)
        stats = run_probe(user_samples(30), gold_probes(user_samples(30)), words, FakeEmbedder(), profile, tmp_path)
    assert min(stats["chunks_per_sample"]) > profile.top_k
    records = read_records(tmp_path / "priors.jsonl")
    assert all(r["evidence_chunks"] == [] and r["probe_valid"] for r in records)

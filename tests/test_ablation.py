"""The ablation study: mixed-policy batches, per-arm priors, and the measure table, with a fake policy model."""

import json

import numpy as np
import pytest
from test_rollout import FakeGenerator, fake, priors_records

from longmab_utils import ablation
from longmab_utils.config import get_profile
from longmab_utils.data import read_records
from longmab_utils.embeddings import random_priors
from longmab_utils.errors import UserError
from longmab_utils.rollout import MixedBatchPolicy, make_batch_policy


class Interrupted(FakeGenerator):
    """Ctrl-C arrives during the first generation."""

    def generate(self, prompts, sampling, desc="", seeds=None):
        raise KeyboardInterrupt


def closed(generators):
    """The generators that were closed."""
    return [g for g in generators if g.closed]


class FakeEmbedder:
    """Bag-of-letters vectors: deterministic, and different texts get different directions."""

    def encode(self, texts, **_):
        return np.array([[t.lower().count(c) + 1e-3 for c in "abcdefghijklmnopqrstuvwxyz0123456789"] for t in texts])


def test_mixed_batch_follows_each_policy_exactly_as_alone():
    records = priors_records(6)
    names = ["ucb", "random", "ucb", "greedy", "random", "ucb"]
    priors, ids = [r["priors"] for r in records], [r["id"] for r in records]
    mixed = MixedBatchPolicy(names, priors, 3, ids)
    alone = {
        n: make_batch_policy(
            n, [priors[i] for i, m in enumerate(names) if m == n], 3, [ids[i] for i, m in enumerate(names) if m == n]
        )
        for n in set(names)
    }
    rng = np.random.default_rng(0)
    for _ in range(5):
        selections, rewards = mixed.select(2), rng.random(6).tolist()
        for name, policy in alone.items():
            members = [i for i, m in enumerate(names) if m == name]
            expected = policy.select(2)
            assert all(np.array_equal(selections[i], e) for i, e in zip(members, expected))
            policy.update(expected, [rewards[i] for i in members])
        mixed.update(selections, rewards)
    for name, policy in alone.items():
        members = [i for i, m in enumerate(names) if m == name]
        assert all(np.allclose(mixed.sample_values(i), policy.sample_values(j)) for j, i in enumerate(members))


def test_arm_records_reuse_probe_priors_and_recompute_the_others():
    records = priors_records(3)
    study = {"paper": ("ucb", "probe_similarity"), "rand": ("ucb", "random"), "query": ("ucb", "query_similarity")}
    copies = ablation.arm_records(records, study, FakeEmbedder(), seed=5)
    assert [c["id"] for c in copies] == [f"{arm}/{r['id']}" for arm in study for r in records]
    assert [c["priors"] for c in copies[:3]] == [r["priors"] for r in records]
    assert copies[3]["priors"] == random_priors(len(records[0]["chunks"]), 5, records[0]["id"])
    assert all(len(c["priors"]) == len(c["chunks"]) for c in copies) and copies[6]["prior_kind"] == "query_similarity"


def test_study_rolls_every_arm_over_the_same_samples_and_measures_them(tmp_path, monkeypatch):
    records = priors_records(4)
    (tmp_path / "priors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setattr("longmab_utils.generation.build_generator", lambda profile: fake(records))
    monkeypatch.setattr("longmab_utils.models.load_embedder", lambda name, trust=False: FakeEmbedder())
    profile = get_profile("smoke", {"rounds": 3, "top_k": 2})
    result = ablation.run_ablation(profile, tmp_path, samples=3)
    table = result["measures"]
    assert list(table) == list(ablation.STUDY)
    for arm, row in table.items():
        assert 0 <= row["pair_yield"] <= 1 and 0 <= row["evidence_coverage"] <= 1 and 0 <= row["distinct_2"] <= 1
        assert result["regret"][arm].shape == (3, 3)
    assert table["full_context"]["evidence_coverage"] == 1.0  # every chunk, every round
    rollouts = ablation.split_by_arm(read_records(tmp_path / "ablation" / "rollout.jsonl"))
    assert all([r["id"] for r in rows] == ["s0", "s1", "s2"] for rows in rollouts.values())
    assert (tmp_path / "ablation" / "measures.json").exists()
    calls = []
    monkeypatch.setattr("longmab_utils.rollout.roll_batch", lambda *a, **k: calls.append(1))
    ablation.run_ablation(profile, tmp_path, samples=3)
    assert calls == []  # a finished study is reused, not rolled out again


def test_the_study_closes_its_engine_when_done_and_when_interrupted(tmp_path, monkeypatch):
    records = priors_records(2)
    (tmp_path / "priors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    built = [fake(records), Interrupted({})]
    monkeypatch.setattr("longmab_utils.generation.build_generator", lambda profile: built[len(closed(built))])
    monkeypatch.setattr("longmab_utils.models.load_embedder", lambda name, trust=False: FakeEmbedder())
    ablation.run_study(get_profile("smoke", {"rounds": 2, "top_k": 2}), tmp_path, samples=2)
    assert closed(built) == [built[0]]
    with pytest.raises(KeyboardInterrupt):
        ablation.run_study(get_profile("smoke", {"rounds": 3, "top_k": 2}), tmp_path, samples=2)
    assert closed(built) == built


def test_study_without_priors_says_which_notebook_to_run(tmp_path):
    with pytest.raises(UserError, match="notebook 03"):
        ablation.run_study(get_profile("smoke"), tmp_path, samples=2)


def test_measures_leave_out_evidence_coverage_when_the_data_records_no_evidence(tmp_path, monkeypatch):
    records = [{**r, "evidence_chunks": []} for r in priors_records(3)]
    (tmp_path / "priors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setattr("longmab_utils.generation.build_generator", lambda profile: fake(records))
    monkeypatch.setattr("longmab_utils.models.load_embedder", lambda name, trust=False: FakeEmbedder())
    table = ablation.run_ablation(get_profile("smoke", {"rounds": 2, "top_k": 2}), tmp_path, samples=3)["measures"]
    assert all("evidence_coverage" not in row and 0 <= row["pair_yield"] <= 1 for row in table.values())

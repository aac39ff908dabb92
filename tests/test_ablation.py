"""The ablation study: mixed-policy batches, per-arm priors, and the measure table, with a fake policy model."""

import json

import numpy as np
import pytest
from test_measures import record
from test_rollout import FakeGenerator, fake, priors_records

from longmab_utils import ablation
from longmab_utils.config import get_profile
from longmab_utils.data import read_records
from longmab_utils.embeddings import random_priors
from longmab_utils.errors import UserError
from longmab_utils.rollout import MixedBatchPolicy, make_batch_policy, run_rollout


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
    assert "final_regret" not in table["greedy"]  # dropped: hindsight means from the rollouts favour greedy
    assert set(result["differences"]) == set(ablation.STUDY) - {"ucb_probe_prior"}
    assert result["differences"] == json.loads((tmp_path / "ablation" / "differences.json").read_text())
    assert table["full_context"]["evidence_coverage"] == 1.0  # every chunk, every round
    rollouts = ablation.split_by_arm(read_records(tmp_path / "ablation" / "rollout.jsonl"))
    assert all([r["id"] for r in rows] == ["s0", "s1", "s2"] for rows in rollouts.values())
    assert (tmp_path / "ablation" / "measures.json").exists()
    calls = []
    monkeypatch.setattr("longmab_utils.rollout.roll_batch", lambda *a, **k: calls.append(1))
    ablation.run_ablation(profile, tmp_path, samples=3)
    assert calls == []  # a finished study is reused, not rolled out again


class Recording(FakeGenerator):
    """Keeps the seeds of every call."""

    def __init__(self, answers):
        super().__init__(answers)
        self.seeds = []

    def generate(self, prompts, sampling, desc="", seeds=None):
        self.seeds.append(list(seeds))
        return super().generate(prompts, sampling, desc, seeds)


def test_the_arms_share_each_samples_seeds_so_the_papers_arm_is_the_rollout_itself(tmp_path, monkeypatch):
    records = priors_records(3)
    (tmp_path / "priors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    generator = Recording({r["question"]: r["answer"] for r in records})
    monkeypatch.setattr("longmab_utils.generation.build_generator", lambda profile: generator)
    monkeypatch.setattr("longmab_utils.models.load_embedder", lambda name, trust=False: FakeEmbedder())
    profile = get_profile("smoke", {"rounds": 3, "top_k": 2})
    arms = ablation.split_by_arm(ablation.run_study(profile, tmp_path, samples=3))
    assert len(generator.seeds) == 3  # one call per round, every arm's rows in it
    for seeds in generator.seeds:
        by_arm = [seeds[i : i + 3] for i in range(0, len(seeds), 3)]
        assert len(by_arm) == len(ablation.STUDY) and all(row == by_arm[0] for row in by_arm)
        assert len(set(by_arm[0])) == 3  # samples still differ
    run_rollout(records, fake(records), profile, tmp_path / "main")
    main = read_records(tmp_path / "main" / "rollout.jsonl")
    paper = next(iter(ablation.STUDY))
    assert [r["rounds"] for r in arms[paper]] == [r["rounds"] for r in main]


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
    assert all("evidence_coverage" not in row for row in table.values())
    # the fake policy answers right whenever it sees the gold chunk: full context always does, so no pair, reward 1
    assert table["full_context"]["pair_yield"] == 0.0 and table["full_context"]["mean_reward"] == 1.0


RIGHT, WRONG, PARTIAL = "Reasoning: it says so.\nAnswer: Vell", "Reasoning: no.\nAnswer: Dorn", "Answer: Vell Press"


def test_a_samples_pair_scores_follow_select_pairs_rule():
    rows = [ablation.sample_measures(record(texts), FakeEmbedder()) for texts in ([RIGHT, WRONG], [PARTIAL, WRONG])]
    assert [row["pair_yield"] for row in rows] == [1.0, 1.0]
    # PARTIAL: SubEM 1, F1 of "vell press" vs "vell" = 2/3 -> pair score 5/6
    assert [row["chosen_score"] for row in rows] == pytest.approx([1.0, 5 / 6])
    assert [row["score_gap"] for row in rows] == pytest.approx([1.0, 5 / 6]) and rows[1]["rejected_score"] == 0.0
    tie = ablation.sample_measures(record([WRONG, WRONG], evidence=()), FakeEmbedder())
    assert tie["pair_yield"] == 0.0 and np.isnan(tie["score_gap"]) and np.isnan(tie["evidence_coverage"])
    assert "evidence_coverage" not in ablation.summarise({"s0": tie})  # no sample with known evidence


def test_paired_differences_are_per_sample_and_skip_undefined_values():
    def row(pair, gap, reward):
        return {
            "pair_yield": pair,
            "score_gap": gap,
            "mean_reward": reward,
            "evidence_coverage": np.nan,
            "distinct_2": 0.5,
            "embedding_distance": 0.1,
        }

    samples = {
        "paper": {"a": row(1.0, 0.8, 0.5), "b": row(1.0, 0.6, 0.3), "c": row(0.0, np.nan, 0.1)},
        "other": {"a": row(1.0, 0.5, 0.4), "b": row(0.0, np.nan, 0.3), "c": row(0.0, np.nan, 0.4)},
    }
    result = ablation.paired_differences(samples, "paper")
    assert list(result) == ["other"] and "evidence_coverage" not in result["other"]  # never defined
    assert result["other"]["pair_yield"]["mean"] == pytest.approx((0 + 1 + 0) / 3)
    gap = result["other"]["score_gap"]
    assert (
        gap["n"] == 1 and gap["mean"] == pytest.approx(0.3) and (gap["low"], gap["high"]) == pytest.approx((0.3, 0.3))
    )
    reward = result["other"]["mean_reward"]
    assert reward["mean"] == pytest.approx((0.1 + 0.0 - 0.3) / 3) and reward["low"] <= reward["mean"] <= reward["high"]
    assert result["other"]["distinct_2"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "n": 3}

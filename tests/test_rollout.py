import warnings
import zlib

import numpy as np
import pytest

from longmab_utils.bandit import UCBChunkSampler
from longmab_utils.chunking import FewArmsWarning
from longmab_utils.config import get_profile
from longmab_utils.data import DataError, read_records
from longmab_utils.errors import UserError
from longmab_utils.metrics import rollout_reward
from longmab_utils.rollout import evidence_shown, merge_shards, run_rollout, shard, sweep_rounds


class FakeGenerator:
    """Answers correctly when the prompt shows the chunk holding the answer, else guesses from its seeded hash."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = 0
        self.closed = False

    def generate(self, prompts, sampling, desc="", seeds=None):
        self.calls += 1
        texts = []
        for messages, seed in zip(prompts, seeds):
            content = messages[0]["content"]
            question = content.split("Question: ")[1].split("\n")[0]
            gold = self.answers[question]
            lucky = zlib.crc32(f"{content}{seed}".encode()) % 3 == 0
            answer = gold if f"holds {gold}" in content or lucky else "Nobody"
            texts.append(f"Reasoning: I read it.\nAnswer: {answer}")
        return texts

    def close(self):
        self.closed = True


def priors_records(n=5):
    records = []
    for s in range(n):
        chunks = [f"Chunk {i} of sample {s}." + (f" It holds Gold{s}." if i == s % 4 else "") for i in range(4 + s % 3)]
        records.append(
            {
                "id": f"s{s}",
                "question": f"Where is thing {s}?",
                "answer": f"Gold{s}",
                "evidence_chunks": [[s % 4]],
                "probe": "",
                "probe_valid": True,
                "prior_kind": "random",
                "priors": np.random.default_rng(s).random(len(chunks)).round(3).tolist(),
                "chunks": chunks,
            }
        )
    return records


@pytest.fixture
def profile():
    return get_profile("smoke", {"rounds": 4, "top_k": 2, "rollout_batch": 2})


def fake(records):
    return FakeGenerator({r["question"]: r["answer"] for r in records})


def run(tmp_path, profile, records=None, shard_spec=None):
    records = records or priors_records()
    summary = run_rollout(records, fake(records), profile, tmp_path, shard_spec)
    return summary, (tmp_path / "rollout.jsonl")


def test_record_schema_and_bandit_bookkeeping(tmp_path, profile):
    summary, path = run(tmp_path, profile)

    rollouts = read_records(path)
    assert [r["id"] for r in rollouts] == [f"s{i}" for i in range(5)]
    for record, source in zip(rollouts, priors_records()):
        assert [r["round"] for r in record["rounds"]] == [1, 2, 3, 4]
        sampler = UCBChunkSampler(source["priors"])
        for r in record["rounds"]:
            assert r["selected"] == sorted(r["selected"]) and len(r["selected"]) == 2
            assert r["selected"] == sampler.select(2).tolist()
            assert r["reward"] == rollout_reward(r["response"], source["answer"])
            sampler.update(r["selected"], r["reward"])
            assert r["values"] == pytest.approx(sampler.values.tolist())
    assert summary["samples"] == 5 and len(summary["mean_reward_by_round"]) == 4
    assert 0 < summary["mean_reward"] < 1


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path, profile):
    _, first = run(tmp_path / "a", profile)
    _, second = run(tmp_path / "b", profile)
    assert first.read_bytes() == second.read_bytes()
    _, third = run(tmp_path / "c", get_profile("smoke", {"rounds": 4, "top_k": 2, "rollout_batch": 2, "seed": 1}))
    assert third.read_bytes() != first.read_bytes()


def test_resume_after_a_partial_batch_and_a_torn_line_equals_an_uninterrupted_run(tmp_path, profile):
    _, full = run(tmp_path / "full", profile)
    lines = full.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "rollout.jsonl").write_bytes(b"".join(lines[:3]) + lines[3][:40])
    records = priors_records()
    generator = fake(records)
    run_rollout(records, generator, profile, broken)
    assert (broken / "rollout.jsonl").read_bytes() == full.read_bytes()
    assert generator.calls == 2 * profile.rounds


def test_finished_run_is_not_repeated(tmp_path, profile):
    records = priors_records()
    run_rollout(records, fake(records), profile, tmp_path)
    again = fake(records)
    run_rollout(records, again, profile, tmp_path)
    assert again.calls == 0


def test_foreign_records_are_refused(tmp_path, profile):
    (tmp_path / "rollout.jsonl").write_text('{"id": "other"}\n')
    with pytest.raises(DataError, match="line 1.*id"):
        run(tmp_path, profile)


def test_baselines_run_through_the_same_loop(tmp_path, profile):
    records = priors_records()
    for name in ("random", "full_context", "greedy"):
        policy = get_profile("smoke", {"rounds": 3, "top_k": 2, "rollout_batch": 2, "policy": name})
        run_rollout(records, fake(records), policy, tmp_path / name)

    full = read_records(tmp_path / "full_context" / "rollout.jsonl")
    assert all(r["selected"] == list(range(s["n_chunks"])) for s in full for r in s["rounds"])
    random_first = read_records(tmp_path / "random" / "rollout.jsonl")[0]["rounds"]
    assert all(len(r["selected"]) == 2 for r in random_first)
    for sample, source in zip(read_records(tmp_path / "greedy" / "rollout.jsonl"), records):
        best_two = sorted(np.argsort(source["priors"])[::-1][:2].tolist())
        assert sample["rounds"][0]["selected"] == best_two  # greedy starts on the two highest priors


def test_shards_merge_into_the_sample_order(tmp_path, profile):
    records = priors_records()
    for index in range(2):
        run_rollout(records, fake(records), profile, tmp_path, f"{index}/2")
    summary = merge_shards(tmp_path, records, 2, profile.top_k)

    assert [r["id"] for r in read_records(tmp_path / "rollout.jsonl")] == [r["id"] for r in records]
    assert summary["samples"] == 5
    with pytest.raises(UserError, match="I/N"):
        shard(records, "2/2")


@pytest.mark.models
def test_how_the_work_is_cut_never_changes_the_data(tmp_path):
    """Real smoke models, a seed past 2**40: two probes; one batch, two batches and two shards merged, byte for byte."""
    import shutil

    from longmab_utils import pipeline

    cheap = {"seed": 2**40, "max_samples": 3, "rounds": 2, "max_new_tokens": 16, "rollout_batch": 3}
    profile = get_profile("smoke", cheap)
    runs = {name: tmp_path / name for name in ("once", "batch2", "sharded")}
    pipeline.probe(profile, runs["once"])
    pipeline.probe(profile, tmp_path / "again")
    assert (runs["once"] / "priors.jsonl").read_bytes() == (tmp_path / "again" / "priors.jsonl").read_bytes()
    for name in ("batch2", "sharded"):
        runs[name].mkdir()
        for artifact in ("samples.jsonl", "priors.jsonl", "probe_summary.json", "settings.json"):
            shutil.copy(runs["once"] / artifact, runs[name] / artifact)
    pipeline.rollout(profile, runs["once"])  # one batch of 3
    pipeline.rollout(get_profile("smoke", {**cheap, "rollout_batch": 2}), runs["batch2"])  # batches of 2 and 1
    for index in range(2):
        pipeline.rollout(profile, runs["sharded"], f"{index}/2")
    pipeline.merge(profile, runs["sharded"], 2)
    expected = (runs["once"] / "rollout.jsonl").read_bytes()
    assert all((run / "rollout.jsonl").read_bytes() == expected for run in runs.values())


def test_rollout_warns_when_the_median_sample_has_no_more_chunks_than_top_k(tmp_path):
    records = priors_records()  # 4-6 chunks, median 5
    with pytest.warns(FewArmsWarning, match="median 5 chunks per sample against top_k 5"):
        run_rollout(records, fake(records), get_profile("smoke", {"rounds": 1, "top_k": 5}), tmp_path / "few")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewArmsWarning)
        run_rollout(records, fake(records), get_profile("smoke", {"rounds": 1, "top_k": 4}), tmp_path / "enough")


def test_evidence_shown_counts_sentences_whose_chunk_was_selected():
    assert evidence_shown([2, 5], [[2], [3]]) == 1
    assert evidence_shown([3, 4], [[3, 4], [4]]) == 2
    assert evidence_shown([0, 1], [[], [3]]) == 0


def test_sweep_rounds_are_those_where_ucb_first_pulls_an_unpulled_chunk(tmp_path, profile):
    records = priors_records()
    run(tmp_path, profile, records)
    rollouts = read_records(tmp_path / "rollout.jsonl")
    longest = max(len(r["chunks"]) for r in records)
    assert sweep_rounds(rollouts) == list(range(2, -(-longest // profile.top_k) + 1))
    two = [{"rounds": [{"round": 1, "selected": [0, 1]}, {"round": 2, "selected": [0, 1]}]}]
    assert sweep_rounds(two) == []

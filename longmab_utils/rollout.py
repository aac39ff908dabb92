"""The MAB rollout: each round, every active sample shows the policy its top-k chunks and scores the answer.

Introduced in notebook 03 (METHOD.md section 3). A batch of samples advances one round per batched
generate call; the reward of each response is credited to the chunks that produced it. Finished
samples are appended to `rollout.jsonl` batch by batch, so a killed run resumes where it stopped and
ends with a file identical to an uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import ROLLOUT, ROLLOUT_SUMMARY
from .bandit import BatchUCB, make_policy
from .chunking import warn_if_few_arms
from .config import Profile
from .data import DataError, JsonlAppender, iter_jsonl, read_records, write_json, write_jsonl
from .errors import UserError
from .generation import Generator
from .metrics import pair_score, rollout_reward
from .probe import sampling_config
from .progress import progress
from .prompts import cot_answer_prompt, user_message
from .seeds import derive_seed


class BatchBaseline:
    """Baseline policies (random-k, greedy, full context, ...) behind BatchUCB's select/update interface."""

    def __init__(self, name: str, priors: Sequence[Sequence[float]], seed: int, ids: Sequence[str]):
        self.policies = [
            make_policy(name, p, np.random.default_rng(derive_seed(seed, i, "policy"))) for p, i in zip(priors, ids)
        ]

    def select(self, k: int) -> list[np.ndarray]:
        """Each sample's selection for this round, ascending."""
        return [np.sort(policy.select(k)) for policy in self.policies]

    def update(self, selections: Sequence[np.ndarray], rewards: Sequence[float]) -> None:
        """Credit each sample's reward to its selection."""
        for policy, selection, reward in zip(self.policies, selections, rewards):
            policy.update(selection, reward)

    def sample_values(self, i: int) -> np.ndarray:
        """The current values of sample i's arms."""
        return np.asarray(self.policies[i].values, dtype=np.float64).copy()


def make_batch_policy(name: str, priors: Sequence[Sequence[float]], seed: int, ids: Sequence[str]) -> Any:
    """The vectorised BatchUCB for `ucb`, else one baseline policy per sample."""
    return BatchUCB(priors) if name == "ucb" else BatchBaseline(name, priors, seed, ids)


class MixedBatchPolicy:
    """Samples that follow different policies in one batch, so an ablation shares its generate calls."""

    def __init__(self, names: Sequence[str], priors: Sequence[Sequence[float]], seed: int, ids: Sequence[str]):
        self.groups = {name: [i for i, n in enumerate(names) if n == name] for name in dict.fromkeys(names)}
        self.policies = {
            name: make_batch_policy(name, [priors[i] for i in members], seed, [ids[i] for i in members])
            for name, members in self.groups.items()
        }
        self.where = {i: (name, j) for name, members in self.groups.items() for j, i in enumerate(members)}

    def select(self, k: int) -> list[np.ndarray]:
        """Each sample's selection from its own policy, in batch order."""
        chosen = {name: list(policy.select(k)) for name, policy in self.policies.items()}
        return [chosen[name][j] for name, j in (self.where[i] for i in range(len(self.where)))]

    def update(self, selections: Sequence[np.ndarray], rewards: Sequence[float]) -> None:
        """Hand each policy its samples' selections and rewards."""
        for name, members in self.groups.items():
            self.policies[name].update([selections[i] for i in members], [rewards[i] for i in members])

    def sample_values(self, i: int) -> np.ndarray:
        """The current values of sample i's arms under its own policy."""
        name, j = self.where[i]
        return self.policies[name].sample_values(j)


def round_prompt(record: dict, selected: np.ndarray) -> list[dict[str, str]]:
    """The chain-of-thought answer prompt over the selected chunks in document order, joined by newlines."""
    context = "\n".join(record["chunks"][i] for i in selected)
    return user_message(cot_answer_prompt(context, record["question"]))


def roll_batch(
    records: Sequence[dict],
    generator: Generator,
    profile: Profile,
    desc: str = "rounds",
    policies: Sequence[str] | None = None,
    seed_ids: Sequence[str] | None = None,
) -> list[dict]:
    """Run all rounds for one batch of priors records (each with its own policy if given); one record per sample.

    Each response is drawn from a seed derived from the run's seed, the round and `seed_ids` (default: the
    records' ids): records that share a seed id share their random numbers round by round.
    """
    priors, ids = [r["priors"] for r in records], [r["id"] for r in records]
    seed_ids = list(seed_ids) if seed_ids is not None else ids
    names = list(policies) if policies is not None else [profile.policy] * len(records)
    if len(set(names)) == 1:
        policy = make_batch_policy(names[0], priors, profile.seed, ids)
    else:
        policy = MixedBatchPolicy(names, priors, profile.seed, ids)
    rounds: list[list[dict]] = [[] for _ in records]
    for round_number in progress(range(1, profile.rounds + 1), desc=desc, unit="round", leave=False):
        selections = policy.select(profile.top_k)
        prompts = [round_prompt(r, s) for r, s in zip(records, selections)]
        seeds = [derive_seed(profile.seed, seed_id, round_number, "rollout") for seed_id in seed_ids]
        responses = generator.generate(prompts, sampling_config(profile), desc=f"round {round_number}", seeds=seeds)
        rewards = [rollout_reward(text, r["answer"], profile.reward_subem_on) for text, r in zip(responses, records)]
        policy.update(selections, rewards)
        for i, (selection, reward, response) in enumerate(zip(selections, rewards, responses)):
            rounds[i].append(
                {
                    "round": round_number,
                    "selected": [int(a) for a in selection],
                    "reward": reward,
                    "values": policy.sample_values(i).tolist(),
                    "response": response,
                }
            )
    return [
        {
            "id": r["id"],
            "question": r["question"],
            "answer": r["answer"],
            "policy": name,
            "n_chunks": len(r["chunks"]),
            "evidence_chunks": r["evidence_chunks"],
            "rounds": sample_rounds,
        }
        for r, name, sample_rounds in zip(records, names, rounds)
    ]


def completed_batches(path: Path, batches: Sequence[Sequence[str]]) -> int:
    """How many leading batches are complete in an existing rollout file; a partial batch is removed from it."""
    if not path.exists():
        return 0
    JsonlAppender(path).close()
    done = [record["id"] for _, record in iter_jsonl(path)]
    full, position = 0, 0
    for batch in batches:
        if done[position : position + len(batch)] != list(batch):
            break
        full, position = full + 1, position + len(batch)
    partial = done[position:]
    if partial and not set(partial) <= set(batches[full] if full < len(batches) else ()):
        raise DataError(path, position + 1, "id", "records do not match this run's samples; use a new run dir")
    if partial:
        write_jsonl(path, read_records(path)[:position])
    return full


def shard(records: Sequence[dict], spec: str | None) -> list[dict]:
    """The records of shard `I/N` (every N-th sample starting at I), or all of them."""
    if not spec:
        return list(records)
    index, _, count = spec.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
        raise UserError(f"--shard expects I/N with 0 <= I < N, got {spec!r}")
    return list(records[int(index) :: int(count)])


def rollout_path(run_dir: str | os.PathLike, shard_spec: str | None) -> Path:
    """`rollout.jsonl`, or `rollout.shard-I-of-N.jsonl` for a shard."""
    if not shard_spec:
        return Path(run_dir) / ROLLOUT
    index, _, count = shard_spec.partition("/")
    return Path(run_dir) / f"rollout.shard-{index}-of-{count}.jsonl"


def run_rollout(
    priors_records: Sequence[dict],
    generator: Generator,
    profile: Profile,
    run_dir: str | os.PathLike,
    shard_spec: str | None = None,
) -> dict:
    """Roll out every sample (or one shard), resuming after the last complete batch; return the summary."""
    records = shard(priors_records, shard_spec)
    warn_if_few_arms([len(r["chunks"]) for r in records], profile.top_k)
    batches = [records[i : i + profile.rollout_batch] for i in range(0, len(records), profile.rollout_batch)]
    path = rollout_path(run_dir, shard_spec)
    began = time.perf_counter()
    start = completed_batches(path, [[r["id"] for r in batch] for batch in batches])
    with JsonlAppender(path) as out:
        bar = progress(range(start, len(batches)), desc="rollout", unit="batch", initial=start, total=len(batches))
        for batch_index in bar:
            for record in roll_batch(batches[batch_index], generator, profile):
                out.append(record)
    summary = summarize(read_records(path), profile.top_k)
    summary["seconds_this_invocation"] = round(time.perf_counter() - began, 1)
    if not shard_spec:
        write_json(Path(run_dir) / ROLLOUT_SUMMARY, summary)
    return summary


def merge_shards(run_dir: str | os.PathLike, priors_records: Sequence[dict], count: int, top_k: int) -> dict:
    """Merge `rollout.shard-*-of-N.jsonl` into `rollout.jsonl` in sample order; every shard must be complete."""
    by_id: dict[str, dict] = {}
    for index in range(count):
        path = rollout_path(run_dir, f"{index}/{count}")
        if not path.exists():
            raise UserError(f"{path} is missing; run `rollout --shard {index}/{count}` first")
        by_id.update((r["id"], r) for r in read_records(path))
    missing = [r["id"] for r in priors_records if r["id"] not in by_id]
    if missing:
        raise UserError(f"{len(missing)} samples have no rollout yet (first: {missing[0]}); finish every shard")
    merged = [by_id[r["id"]] for r in priors_records]
    write_jsonl(Path(run_dir) / ROLLOUT, merged)
    summary = summarize(merged, top_k)
    write_json(Path(run_dir) / ROLLOUT_SUMMARY, summary)
    return summary


def evidence_shown(selected: Sequence[int], evidence_chunks: Sequence[Sequence[int]]) -> int:
    """How many evidence sentences a round's chunks hold (a sentence counts when any chunk holding it is selected)."""
    return sum(1 for holders in evidence_chunks if set(holders) & set(selected))


def sweep_rounds(rollouts: Sequence[dict]) -> list[int]:
    """The rounds after the first in which some sample pulled a chunk for the first time: UCB's forced sweep."""
    sweep = set()
    for record in rollouts:
        pulled: set[int] = set()
        for r in record["rounds"]:
            if r["round"] > 1 and not set(r["selected"]) <= pulled:
                sweep.add(r["round"])
            pulled |= set(r["selected"])
    return sorted(sweep)


def summarize(rollouts: Sequence[dict], top_k: int) -> dict:
    """Mean reward per round, pull counts and how many samples can yield a preference pair."""
    rewards = np.array([[r["reward"] for r in s["rounds"]] for s in rollouts])
    spread = [
        max(scores) != min(scores)
        for scores in ([pair_score(r["response"], s["answer"]) for r in s["rounds"]] for s in rollouts)
    ]
    pulls = [np.bincount([a for r in s["rounds"] for a in r["selected"]], minlength=s["n_chunks"]) for s in rollouts]
    return {
        "samples": len(rollouts),
        "rounds": int(rewards.shape[1]) if rewards.size else 0,
        "top_k": top_k,
        "mean_reward": float(rewards.mean()) if rewards.size else 0.0,
        "mean_reward_by_round": rewards.mean(axis=0).round(4).tolist() if rewards.size else [],
        "share_with_pair_score_spread": sum(spread) / len(spread) if spread else 0.0,
        "median_chunks": statistics.median(s["n_chunks"] for s in rollouts) if rollouts else 0,
        "share_arms_pulled": float(np.mean([(p > 0).mean() for p in pulls])) if pulls else 0.0,
    }

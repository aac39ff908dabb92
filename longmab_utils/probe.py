"""The probe step: chunk each sample, ask the policy for a gold-guided chain of thought, and turn it into arm priors.

Introduced in notebook 03 (METHOD.md section 2). The probe sees the full context, the question and
the gold answer; it is kept only if it ends by stating an answer that matches the gold one. Chunks
similar to a valid probe start with high values, so the bandit tries them first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from .artifacts import PRIORS, PROBE_SUMMARY
from .chunking import chunk_text, warn_if_few_arms
from .config import Profile
from .data import write_json, write_jsonl
from .embeddings import batch_priors
from .errors import UserError
from .generation import Generator, SamplingConfig
from .metrics import normalize_answer
from .prompts import probe_prompt, user_message
from .seeds import derive_seed

ANSWER_MARKER = "the answer is"


def chunk_samples(samples: Sequence[dict], count_tokens: Callable[[str], int], profile: Profile) -> list[list[str]]:
    """Chunk every sample's context with the profile's budget, overlap and minimum chunk size."""
    return [
        chunk_text(s["context"], count_tokens, profile.chunk_size, profile.overlap, profile.min_sentences)
        for s in samples
    ]


def evidence_chunks(chunks: Sequence[str], evidence: Sequence[str]) -> list[list[int]]:
    """For each evidence sentence, the indices of the chunks that contain it (overlaps can give two)."""
    return [[i for i, chunk in enumerate(chunks) if sentence in chunk] for sentence in evidence]


def probe_answer(probe: str) -> str | None:
    """The text after the last 'the answer is' (lower-cased), or None when the marker is missing."""
    text = probe.lower()
    at = text.rfind(ANSWER_MARKER)
    return None if at < 0 else text[at + len(ANSWER_MARKER) :]


def is_valid_probe(probe: str, gold: str) -> bool:
    """METHOD.md rule: the stated answer contains the gold answer or vice versa, after normalisation."""
    stated = probe_answer(probe)
    if stated is None:
        return False
    stated, gold = normalize_answer(stated), normalize_answer(gold)
    return bool(stated) and (gold in stated or stated in gold)


def generate_probes(samples: Sequence[dict], generator: Generator, profile: Profile) -> list[str]:
    """One gold-guided chain of thought per sample, with the rollout's sampling settings."""
    prompts = [user_message(probe_prompt(s["context"], s["question"], s["answer"])) for s in samples]
    sampling = replace(sampling_config(profile), max_new_tokens=profile.probe_max_new_tokens)
    seeds = [derive_seed(profile.seed, s["id"], 0, "probe") for s in samples]
    return generator.generate(prompts, sampling, desc="probe", seeds=seeds)


def sampling_config(profile: Profile) -> SamplingConfig:
    """The profile's sampling settings (METHOD.md section 2)."""
    return SamplingConfig(
        temperature=profile.temperature,
        top_p=profile.top_p,
        presence_penalty=profile.presence_penalty,
        max_new_tokens=profile.max_new_tokens,
        seed=profile.seed,
    )


def build_priors(
    samples: Sequence[dict],
    chunk_lists: Sequence[list[str]],
    probes: Sequence[str],
    embedder: Any,
    profile: Profile,
) -> tuple[list[dict], dict]:
    """Priors records for the samples that go on, plus counts of what was kept and dropped."""
    valid = [is_valid_probe(probe, s["answer"]) for probe, s in zip(probes, samples)]
    keep = [i for i, ok in enumerate(valid) if ok or profile.keep_invalid_probes]
    kinds = {i: profile.prior if valid[i] or profile.prior != "probe_similarity" else "query_similarity" for i in keep}
    priors: dict[int, list[float]] = {}
    for kind in sorted(set(kinds.values())):
        group = [i for i in keep if kinds[i] == kind]
        anchors = [probes[i] if kind == "probe_similarity" else samples[i]["question"] for i in group]
        values = batch_priors(
            kind, embedder, [chunk_lists[i] for i in group], anchors, profile.seed, [samples[i]["id"] for i in group]
        )
        priors.update(zip(group, values))
    records = [
        {
            "id": samples[i]["id"],
            "question": samples[i]["question"],
            "answer": samples[i]["answer"],
            "evidence_chunks": evidence_chunks(chunk_lists[i], samples[i].get("evidence", [])),
            "probe": probes[i],
            "probe_valid": valid[i],
            "prior_kind": kinds[i],
            "priors": priors[i],
            "chunks": chunk_lists[i],
        }
        for i in keep
    ]
    stats = {
        "samples": len(samples),
        "valid_probes": sum(valid),
        "dropped_invalid_probe": len(samples) - len(keep),
        "kept_with_query_prior": sum(1 for i in keep if not valid[i]),
        "chunks_per_sample": [len(chunk_lists[i]) for i in keep],
    }
    return records, stats


def run_probe(
    samples: Sequence[dict],
    probes: Sequence[str],
    count_tokens: Callable[[str], int],
    embedder: Any,
    profile: Profile,
    run_dir: str | os.PathLike,
    began: float | None = None,
) -> dict:
    """Chunk and score every sample against its probe; write `priors.jsonl` and `probe_summary.json` (its seconds
    counted from `began`, a `time.perf_counter()` reading taken before the probes were generated)."""
    began = time.perf_counter() if began is None else began
    chunk_lists = chunk_samples(samples, count_tokens, profile)
    warn_if_few_arms([len(chunks) for chunks in chunk_lists], profile.top_k)
    records, stats = build_priors(samples, chunk_lists, probes, embedder, profile)
    if not records:
        raise UserError(
            f"no sample has a valid probe ({len(samples)} tried); the policy cannot state the gold answer. "
            "Check the model and template, or use --set keep_invalid_probes=true"
        )
    stats["seconds"] = round(time.perf_counter() - began, 1)
    write_jsonl(os.path.join(run_dir, PRIORS), records)
    write_json(os.path.join(run_dir, PROBE_SUMMARY), stats)
    return stats

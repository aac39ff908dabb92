"""Turn rollout responses into DPO preference pairs, with the full-context prompt and its token budget.

Introduced in notebook 04. Follows METHOD.md section 5: chosen is a best-scoring response, rejected a
worst-scoring one (pair score, seeded random tie-breaks), the prompt is the chain-of-thought template
filled with the FULL context, middle-truncated to fit `max_prompt_length`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from .artifacts import LLAMAFACTORY, PAIRS, PAIRS_SUMMARY, PAIRS_TRL
from .data import write_json, write_jsonl
from .metrics import Golds, pair_score
from .progress import progress
from .prompts import cot_answer_prompt
from .seeds import derive_seed

PROMPT_SLACK = 32
DEFAULT_SEED = 42


class Tokenizer(Protocol):
    """The slice of a Hugging Face tokenizer that pair building needs."""

    def __call__(self, text: str, add_special_tokens: bool = ...) -> Any: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


class PairSkipped(Exception):
    """A sample yields no DPO example; `reason` says why ('all_scores_equal' or 'over_budget')."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


def select_pair(responses: Sequence[str], golds: Golds, rng: random.Random) -> tuple[int, int] | None:
    """(chosen index, rejected index): a max and a min pair score, ties broken by rng; None if all scores are equal."""
    scores = [pair_score(response, golds) for response in responses]
    if not scores or max(scores) == min(scores):
        return None
    best = [i for i, s in enumerate(scores) if s == max(scores)]
    worst = [i for i, s in enumerate(scores) if s == min(scores)]
    return int(rng.choice(best)), int(rng.choice(worst))


def middle_truncate(ids: Sequence[Any], budget: int) -> list:
    """Keep the first budget // 2 and the last budget // 2 items (all of them if they fit)."""
    if len(ids) <= budget:
        return list(ids)
    half = max(budget, 0) // 2
    return list(ids[:half]) + (list(ids[-half:]) if half else [])


def _ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of text without special tokens."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def context_budget(question: str, responses: Sequence[str], tokenizer: Tokenizer, max_prompt_length: int) -> int:
    """Tokens left for the context: `max_prompt_length - 32 - len(question) - max(len(response))` (notebook 04,
    equation (2))."""
    longest = max(len(_ids(tokenizer, r)) for r in responses)
    return max_prompt_length - PROMPT_SLACK - len(_ids(tokenizer, question)) - longest


def fit_context(
    context: str, question: str, responses: Sequence[str], tokenizer: Tokenizer, max_prompt_length: int
) -> tuple[str, bool]:
    """The context middle-truncated to its `context_budget` in tokens.

    Returns (context, truncated). Raises PairSkipped('over_budget') when the question and the
    responses alone leave no room for a context.
    """
    budget = context_budget(question, responses, tokenizer, max_prompt_length)
    if budget < 2:
        raise PairSkipped("over_budget", f"question and responses leave {budget} tokens for the context")
    context_ids = _ids(tokenizer, context)
    if len(context_ids) <= budget:
        return context, False
    return tokenizer.decode(middle_truncate(context_ids, budget), skip_special_tokens=True), True


def build_dpo_example(
    sample_id: str,
    question: str,
    answer: str,
    context: str,
    responses: Sequence[str],
    tokenizer: Tokenizer,
    rng: random.Random,
    max_prompt_length: int = 8192,
) -> dict[str, Any]:
    """One DPO example from a sample's rollout responses; raises PairSkipped when it yields none."""
    picked = select_pair(responses, answer, rng)
    if picked is None:
        raise PairSkipped("all_scores_equal")
    chosen, rejected = picked
    fitted, truncated = fit_context(
        context, question, [responses[chosen], responses[rejected]], tokenizer, max_prompt_length
    )
    return {
        "id": sample_id,
        "question": question,
        "answer": answer,
        "prompt": cot_answer_prompt(fitted, question),
        "chosen": responses[chosen],
        "rejected": responses[rejected],
        "chosen_score": pair_score(responses[chosen], answer),
        "rejected_score": pair_score(responses[rejected], answer),
        "chosen_index": chosen,
        "rejected_index": rejected,
        "context_truncated": truncated,
    }


def tie_breaker(seed: int, sample_id: str) -> random.Random:
    """The generator that breaks one sample's ties between equal pair scores."""
    return random.Random(derive_seed(seed, sample_id, "pair-tie-break"))


def build_pairs(
    records: Iterable[dict[str, Any]], tokenizer: Tokenizer, seed: int = DEFAULT_SEED, max_prompt_length: int = 8192
) -> tuple[list[dict[str, Any]], Counter]:
    """DPO examples from rollout records (id, question, answer, context, rounds[].response); skips by reason.

    Ties are broken per sample (`tie_breaker`), so a sample's pair does not depend on the samples before it.
    """
    examples, skipped = [], Counter()
    for record in records:
        responses = [r["response"] for r in record["rounds"]]
        rng = tie_breaker(seed, record["id"])
        try:
            examples.append(
                build_dpo_example(
                    record["id"],
                    record["question"],
                    record["answer"],
                    record["context"],
                    responses,
                    tokenizer,
                    rng,
                    max_prompt_length,
                )
            )
        except PairSkipped as skip:
            skipped[skip.reason] += 1
    return examples, skipped


def to_trl(example: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """TRL's conversational preference format: the prompt as a user turn, chosen/rejected as assistant turns."""
    return {
        "prompt": [{"role": "user", "content": example["prompt"]}],
        "chosen": [{"role": "assistant", "content": example["chosen"]}],
        "rejected": [{"role": "assistant", "content": example["rejected"]}],
    }


def export_trl(examples: Iterable[dict[str, Any]], path: str | Path) -> None:
    """Write the examples as TRL conversational JSONL."""
    write_jsonl(path, (to_trl(example) for example in examples))


def export_llamafactory(examples: Iterable[dict[str, Any]], out_dir: str | Path, name: str = "longmab_dpo") -> Path:
    """Write `<name>.jsonl` (prompt/chosen/rejected) and a `dataset_info.json` ranking entry for LLaMA-Factory."""
    out_dir = Path(out_dir)
    data_file = out_dir / f"{name}.jsonl"
    write_jsonl(data_file, ({k: e[k] for k in ("prompt", "chosen", "rejected")} for e in examples))
    columns = {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}
    write_json(
        out_dir / "dataset_info.json", {name: {"file_name": data_file.name, "ranking": True, "columns": columns}}
    )
    return data_file


def pair_summary(examples: Sequence[dict[str, Any]], skipped: Counter, tokenizer: Tokenizer, samples: int) -> dict:
    """Yield, skip reasons, and the score and token-length distributions of the pairs."""
    lengths = {part: [len(_ids(tokenizer, e[part])) for e in examples] for part in ("prompt", "chosen", "rejected")}
    return {
        "samples": samples,
        "pairs": len(examples),
        "yield": len(examples) / samples if samples else 0.0,
        "skipped": dict(skipped),
        "chosen_scores": [e["chosen_score"] for e in examples],
        "rejected_scores": [e["rejected_score"] for e in examples],
        "context_truncated": sum(e["context_truncated"] for e in examples),
        "tokens": lengths,
    }


def run_pairs(
    records: Sequence[dict[str, Any]], tokenizer: Tokenizer, seed: int, max_prompt_length: int, out_dir: str | Path
) -> dict:
    """Build the pairs of a run and write `pairs.jsonl`, `pairs_trl.jsonl`, `llamafactory/` and `pairs_summary.json`."""
    out_dir = Path(out_dir)
    examples, skipped = build_pairs(progress(records, desc="pairs", unit="sample"), tokenizer, seed, max_prompt_length)
    write_jsonl(out_dir / PAIRS, examples)
    export_trl(examples, out_dir / PAIRS_TRL)
    export_llamafactory(examples, out_dir / LLAMAFACTORY)
    summary = pair_summary(examples, skipped, tokenizer, len(records))
    write_json(out_dir / PAIRS_SUMMARY, summary)
    return {k: v for k, v in summary.items() if k not in ("chosen_scores", "rejected_scores", "tokens")}

"""LongBench-style evaluation: the chain-of-thought template, middle truncation, greedy decoding, EM/F1/SubEM.

Introduced in notebook 06 (METHOD.md section 7). Every setting that moves long-context scores (the
template, the truncation length, decoding, the token limit) and a checksum of every evaluation file
are written into `metrics.json`, because reproductions most often fail on exactly these.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .artifacts import METRICS, PREDICTIONS
from .data import read_longbench, write_json, write_jsonl
from .errors import UserError
from .generation import Generator, SamplingConfig
from .metrics import answer_metrics, extract_answer
from .pairs import middle_truncate
from .prompts import COT_ANSWER_TEMPLATE, cot_answer_prompt, user_message
from .runfolder import sha256

EVAL_SUFFIXES = (".jsonl", ".parquet")
CHAT_TEMPLATE_ALLOWANCE = 64
"""Tokens kept free for the chat template's role headers around the filled evaluation template."""


@dataclass(frozen=True)
class EvalSettings:
    """What decides an evaluation's scores (METHOD.md section 7 defaults)."""

    max_input_len: int = 100_000
    """Token limit of the filled template; longer prompts keep their first and last halves."""
    max_new_tokens: int = 1024
    """Token limit of each answer."""
    presence_penalty: float = 1.0
    """As in the reference's evaluation sampling parameters (greedy decoding)."""
    max_items: int | None = None
    """Evaluate only the first N items of each file (None: all)."""


def eval_context(max_input_len: int, max_new_tokens: int, model_limit: int | None) -> tuple[int, int]:
    """(prompt budget, engine context) of an evaluation: the context holds the budget, the chat template's headers
    and the answer, capped at the model's own limit; a capped context shrinks the budget, never the answer (the
    reference serves max_input_len + 2000)."""
    context = max_input_len + CHAT_TEMPLATE_ALLOWANCE + max_new_tokens
    if model_limit is not None:
        context = min(context, model_limit)
    budget = context - CHAT_TEMPLATE_ALLOWANCE - max_new_tokens
    if budget < 1:
        raise UserError(
            f"eval_max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's {context}-token context"
        )
    return budget, context


def eval_files(data: str | os.PathLike) -> list[Path]:
    """The evaluation files of a folder (or the one file given), sorted by name."""
    path = Path(data)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in EVAL_SUFFIXES)
    if not files:
        raise UserError(f"no .jsonl or .parquet evaluation files in {path}")
    return files


def read_eval_file(path: Path) -> list[dict[str, Any]]:
    """Items of a LongBench or InfiniteBench evaluation file (JSONL or parquet), validated by `data.read_longbench`."""
    return read_longbench(path)


def fit_prompt(context: str, question: str, tokenizer: Any, max_input_len: int) -> tuple[str, bool]:
    """The filled template, middle-truncated to `max_input_len` tokens (first and last halves kept)."""
    prompt = cot_answer_prompt(context, question)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_input_len:
        return prompt, False
    return tokenizer.decode(middle_truncate(ids, max_input_len), skip_special_tokens=True), True


def evaluate_items(
    items: Sequence[dict[str, Any]], generator: Generator, tokenizer: Any, settings: EvalSettings, desc: str
) -> list[dict[str, Any]]:
    """Greedy answers and per-item metrics for one evaluation set (`answered`: the response has an answer line)."""
    fitted = [fit_prompt(item["context"], item["input"], tokenizer, settings.max_input_len) for item in items]
    sampling = SamplingConfig(
        temperature=0.0, presence_penalty=settings.presence_penalty, max_new_tokens=settings.max_new_tokens
    )
    responses = generator.generate([user_message(prompt) for prompt, _ in fitted], sampling, desc=desc)
    rows = []
    for item, (_, truncated), response in zip(items, fitted, responses):
        prediction, answered = extract_answer(response)
        rows.append(
            {
                "id": item["id"],
                "answers": item["answers"],
                "prediction": prediction,
                "answered": answered,
                "response": response,
                "truncated": truncated,
                **answer_metrics(response, item["answers"]),
            }
        )
    return rows


def evaluate(
    generator: Generator,
    tokenizer: Any,
    data: str | os.PathLike,
    settings: EvalSettings,
    out_dir: str | os.PathLike,
    label: str,
) -> dict[str, Any]:
    """Evaluate one model on every file of `data`; write `predictions/<label>/<set>.jsonl`; return its metrics.

    The items of all sets go through one generate call, so its length-sorted batches are full.
    """
    paths = eval_files(data)
    sets = [read_eval_file(path)[: settings.max_items] for path in paths]
    rows_all = evaluate_items([item for items in sets for item in items], generator, tokenizer, settings, label)
    scores, files, per_set = {}, {}, {}
    for path, items in zip(paths, sets):
        rows, rows_all = rows_all[: len(items)], rows_all[len(items) :]
        write_jsonl(Path(out_dir) / PREDICTIONS / label / f"{path.stem}.jsonl", rows)
        scores[path.stem] = {m: sum(r[m] for r in rows) / len(rows) for m in ("em", "f1", "subem", "answered")}
        scores[path.stem]["n"] = len(rows)
        files[path.name] = sha256(path)
        per_set[path.stem] = rows
    return {"scores": scores, "files": files, "rows": per_set}


def record_metrics(out_dir: str | os.PathLike, results: dict[str, dict], settings: EvalSettings, extra: dict) -> dict:
    """Write `metrics.json`: scores per model and dataset, the paired comparison of base and trained (when both
    ran), file checksums and every score-moving setting."""
    files = next(iter(results.values()))["files"]
    document = {
        "scores": {label: result["scores"] for label, result in results.items()},
        **(
            {"paired": paired_section(results["base"]["rows"], results["trained"]["rows"])}
            if "trained" in results
            else {}
        ),
        "files_sha256": files,
        "settings": {
            "template": COT_ANSWER_TEMPLATE,
            "truncation": f"middle, first and last halves of the filled template, {settings.max_input_len} tokens",
            "decoding": "greedy (temperature 0)",
            "max_new_tokens": settings.max_new_tokens,
            "presence_penalty": settings.presence_penalty,
            "max_items": settings.max_items,
            **extra,
        },
    }
    write_json(Path(out_dir) / METRICS, document)
    return document


def comparison_table(scores: dict[str, dict[str, dict[str, float]]]) -> Any:
    """A DataFrame: one row per dataset plus the average, one column per (model, metric)."""
    import pandas as pd

    frames = {
        label: pd.DataFrame({name: {m: s[m] for m in ("em", "f1", "subem")} for name, s in sets.items()}).T
        for label, sets in scores.items()
    }
    table = pd.concat(frames, axis=1)
    table.loc["average"] = table.mean()
    return (100 * table).round(1)


def head_to_head(
    base: Sequence[dict[str, Any]], trained: Sequence[dict[str, Any]], metric: str = "f1"
) -> dict[str, int]:
    """Items (matched by id) on which the trained model scores higher (wins), lower (losses) or the same (ties)."""
    before, after = {r["id"]: r[metric] for r in base}, {r["id"]: r[metric] for r in trained}
    if before.keys() != after.keys():
        raise UserError(f"base and trained predictions cover different items: {sorted(before.keys() ^ after.keys())}")
    differences = [after[key] - before[key] for key in before]
    wins, losses = sum(d > 1e-12 for d in differences), sum(d < -1e-12 for d in differences)
    return {"wins": wins, "losses": losses, "ties": len(differences) - wins - losses}


BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
"""Item resamples of the paired bootstrap and the seed of their draw (fixed: the interval is part of the result)."""


def bootstrap_interval(differences: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of paired per-item differences (items resampled with replacement)."""
    import numpy as np

    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        return (0.0, 0.0)
    draws = np.random.default_rng(BOOTSTRAP_SEED).integers(0, values.size, size=(BOOTSTRAP_RESAMPLES, values.size))
    means = values[draws].mean(axis=1)
    tail = (1 - level) / 2
    return (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))


def paired_comparison(base: Sequence[dict[str, Any]], trained: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Item-by-item trained vs base: wins, losses and ties by F1 with their sign test, and the mean EM and F1
    differences with bootstrap 95% intervals."""
    counts = head_to_head(base, trained, "f1")
    before = {r["id"]: r for r in base}
    result: dict[str, Any] = {**counts, "p": sign_test(counts["wins"], counts["losses"]), "n": len(trained)}
    for metric in ("em", "f1"):
        differences = [r[metric] - before[r["id"]][metric] for r in trained]
        low, high = bootstrap_interval(differences)
        result[f"{metric}_difference"] = {"mean": sum(differences) / len(differences), "low": low, "high": high}
    return result


def paired_section(base: dict[str, list[dict]], trained: dict[str, list[dict]]) -> dict[str, Any]:
    """`metrics.json`'s `paired`: the paired comparison per evaluation set and over all their items together."""

    def pooled(sets: dict[str, list[dict]]) -> list[dict]:
        """Every set's rows in one list, ids prefixed with their set so that two sets' ids never meet."""
        return [{**r, "id": f"{name}/{r['id']}"} for name, rows in sets.items() for r in rows]

    return {
        "wins_by": "f1",
        "test": "two-sided exact sign test, ties dropped",
        "interval": f"95% percentile bootstrap over items, {BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}",
        "sets": {name: paired_comparison(base[name], trained[name]) for name in base},
        "all": paired_comparison(pooled(base), pooled(trained)),
    }


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (ties dropped): the chance of a split at least this uneven under a fair coin
    (notebook 06, equation (2))."""
    n = wins + losses
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)

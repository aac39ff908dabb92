"""Answer normalization, extraction and the QA metrics behind rewards, pairs and evaluation.

Introduced in notebook 03. Follows METHOD.md section 4, including the reference's quirks: the
answer markers are tried in a fixed order, the LAST occurrence of the first marker present wins,
and a marker at the very end of the text fails extraction with no fallback to another marker.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

ANSWER_MARKERS = ("answer:", "the answer is:", "final answer is:")
_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")

Golds = str | Sequence[str]


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def extract_answer(text: str) -> tuple[str, bool]:
    """Return (answer after the answer marker, True), or (the whole lower-cased text, False)."""
    lowered = text.lower()
    for marker in ANSWER_MARKERS:
        index = lowered.rfind(marker)
        if index == -1:
            continue
        end = index + len(marker)
        if end >= len(lowered):
            break
        return lowered[end:].strip(), True
    return lowered.strip(), False


def _as_list(golds: Golds) -> list[str]:
    """Accept a single gold answer or a list of them."""
    return [golds] if isinstance(golds, str) else list(golds)


def exact_match(prediction: str, golds: Golds) -> float:
    """1.0 if the normalized prediction equals some normalized gold answer."""
    norm = normalize_answer(prediction)
    return float(any(norm == normalize_answer(gold) for gold in _as_list(golds)))


def substring_exact_match(prediction: str, golds: Golds) -> float:
    """1.0 if some normalized gold answer is a substring of the normalized prediction (SubEM)."""
    norm = normalize_answer(prediction)
    return float(any(normalize_answer(gold) in norm for gold in _as_list(golds)))


def _token_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 between two normalized strings."""
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Golds) -> float:
    """Token-overlap F1 of the normalized prediction, maximised over the gold answers (notebook 06, equation (1))."""
    return max((_token_f1(prediction, gold) for gold in _as_list(golds)), default=0.0)


def rollout_reward(response: str, golds: Golds, subem_on: str = "response") -> float:
    """The rollout reward (SubEM + F1) / 2 of notebook 03's equation (2); F1 on the extracted answer (0 without one).

    `subem_on="response"` is the reference: SubEM over the WHOLE response, so an answer that
    only appears in the reasoning still earns half the reward. `subem_on="answer"` scores SubEM on
    the extracted answer too (0 without a marker), which makes the reward equal `pair_score`.
    """
    if subem_on not in ("response", "answer"):
        raise ValueError(f"subem_on must be 'response' or 'answer', got {subem_on!r}")
    if subem_on == "answer":
        return pair_score(response, golds)
    parts = reward_parts(response, golds)
    return (parts["subem_response"] + parts["f1_answer"]) / 2


def reward_parts(response: str, golds: Golds) -> dict[str, float | bool | str]:
    """The halves of the reference rollout reward: SubEM over the whole response and F1 of the extracted answer."""
    answer, found = extract_answer(response)
    return {
        "answer_line": found,
        "answer": answer if found else "",
        "subem_response": substring_exact_match(response, golds),
        "f1_answer": f1_score(answer, golds) if found else 0.0,
    }


def pair_score(response: str, golds: Golds) -> float:
    """The pair score (SubEM + F1) / 2, both on the extracted answer, 0 without a marker (notebook 04, equation (1))."""
    answer, found = extract_answer(response)
    if not found:
        return 0.0
    return (substring_exact_match(answer, golds) + f1_score(answer, golds)) / 2


def answer_metrics(response: str, golds: Golds) -> dict[str, float]:
    """EM, F1 and SubEM of the extracted answer (all 0 without a marker), as evaluation reports them."""
    answer, found = extract_answer(response)
    if not found:
        return {"em": 0.0, "f1": 0.0, "subem": 0.0}
    return {
        "em": exact_match(answer, golds),
        "f1": f1_score(answer, golds),
        "subem": substring_exact_match(answer, golds),
    }

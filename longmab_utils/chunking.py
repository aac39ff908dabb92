"""Split a long context into clause-sized pieces and overlapping, token-budgeted chunks (the arms).

Introduced in notebook 01. Implements METHOD.md section 1 with the four fixes it lists:
(a) text after the last punctuation mark is kept as a final piece; (b) every chunk after the first
overlaps the previous one, even when the first chunk holds `overlap` pieces or fewer; (c) each
piece is tokenized once, so chunking is linear in the context length; (d) a short final chunk that
is merged into the previous one contributes only its new pieces, never its overlap twice.
"""

from __future__ import annotations

import re
import statistics
import warnings
from collections.abc import Callable, Sequence
from typing import Any

SPLIT_MARKS = ("!", "。", "，", "！", "?", "？", ",", ".", ";")
_SPLIT = re.compile("(" + "|".join(map(re.escape, SPLIT_MARKS)) + ")")

CountTokens = Callable[[str], int]


def split_sentences(text: str) -> list[str]:
    """Cut text after every split mark, keeping the mark on the piece before it; no text is lost."""
    parts = _SPLIT.split(text)
    pieces = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    if parts[-1]:
        pieces.append(parts[-1])
    return pieces


def chunk_spans(
    piece_tokens: list[int], chunk_size: int = 1500, overlap: int = 2, min_sentences: int = 2
) -> list[tuple[int, int]]:
    """Group pieces (given their token counts) into chunks, as half-open (start, end) piece ranges (notebook 01,
    equation (1))."""
    if chunk_size <= 0 or overlap < 0 or min_sentences < 1:
        raise ValueError(
            f"need chunk_size > 0, overlap >= 0, min_sentences >= 1; got {chunk_size}, {overlap}, {min_sentences}"
        )
    spans: list[tuple[int, int]] = []
    first_new, accumulated, overlap_tokens = 0, 0, 0
    last = len(piece_tokens) - 1
    for i, tokens in enumerate(piece_tokens):
        accumulated += tokens
        if accumulated < chunk_size - overlap_tokens and i != last:
            continue
        start = max(0, first_new - overlap) if spans else 0
        if spans and i == last and i + 1 - start < min_sentences:
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((start, i + 1))
        overlap_tokens = sum(piece_tokens[max(0, i + 1 - overlap) : i + 1])
        first_new, accumulated = i + 1, 0
    return spans


def chunk_text(
    text: str, count_tokens: CountTokens, chunk_size: int = 1500, overlap: int = 2, min_sentences: int = 2
) -> list[str]:
    """Chunk a context: close a chunk once its new pieces reach `chunk_size - overlap_tokens` tokens."""
    pieces = split_sentences(text)
    counts = count_tokens.batch(pieces) if isinstance(count_tokens, HFTokenCounter) else map(count_tokens, pieces)
    spans = chunk_spans(list(counts), chunk_size, overlap, min_sentences)
    return ["".join(pieces[start:end]) for start, end in spans]


class FewArmsWarning(UserWarning):
    """The median sample has no more chunks than the policy is shown per round."""


def warn_if_few_arms(chunk_counts: Sequence[int], top_k: int) -> bool:
    """Warn (FewArmsWarning) and return True when the median chunk count per sample is at most `top_k`."""
    if not chunk_counts:
        return False
    median = statistics.median(chunk_counts)
    if median > top_k:
        return False
    warnings.warn(
        f"median {median:g} chunks per sample against top_k {top_k}: most rounds show the whole context, so the "
        "bandit has nothing to choose. Use longer contexts (data/sample/long for chunk_size 1500), a smaller "
        "chunk_size or a smaller top_k.",
        FewArmsWarning,
        stacklevel=3,
    )
    return True


class HFTokenCounter:
    """`count_tokens` from a Hugging Face tokenizer, excluding special tokens (no BOS/CLS per piece)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> int:
        """Token count of one text."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def batch(self, texts: list[str]) -> list[int]:
        """Token counts of many texts in one tokenizer call."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]


def reference_chunk_text(
    text: str, count_tokens: CountTokens, chunk_size: int = 1500, overlap: int = 2, min_sentences: int = 2
) -> list[str]:
    """The authors' chunker with its defects (a)-(d), restated for comparison in notebook 01 and the benchmark.

    It re-tokenizes the accumulated text after every piece, drops text after the last mark, skips the
    overlap for the second chunk when the first holds `overlap` pieces or fewer, and re-appends the
    overlap pieces of a merged final chunk.
    """
    parts = _SPLIT.split(text)
    if len(parts) == 1:
        return parts
    pieces = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    chunks: list[str] = []
    accumulated, overlap_tokens, start = "", 0, 0
    for i, piece in enumerate(pieces):
        accumulated += piece
        if count_tokens(accumulated) < chunk_size - overlap_tokens and i != len(pieces) - 1:
            continue
        if i + 1 > overlap:
            overlap_tokens = sum(count_tokens(pieces[j]) for j in range(i + 1 - overlap, i + 1))
        if chunks and start > overlap:
            start -= overlap
        chunk = "".join(pieces[start : i + 1])
        if chunks and i == len(pieces) - 1 and i - start + 1 < min_sentences:
            chunks[-1] += chunk
        else:
            chunks.append(chunk)
        accumulated, start = "", i + 1
    return chunks

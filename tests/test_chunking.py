"""Chunking: coverage, the token budget, overlap, the min-sentence merge, and equality with the reference chunker."""

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longmab_utils.chunking import (
    SPLIT_MARKS,
    FewArmsWarning,
    HFTokenCounter,
    chunk_spans,
    chunk_text,
    reference_chunk_text,
    split_sentences,
    warn_if_few_arms,
)
from longmab_utils.models import bundled_embedder_path

texts = st.text(alphabet=st.sampled_from(list("abc xyz") + list(SPLIT_MARKS)), max_size=300)
settings_ = st.tuples(st.integers(1, 60), st.integers(0, 3), st.integers(1, 4))


def char_count(text: str) -> int:
    """An additive tokenizer: one token per character."""
    return len(text)


def word_count(text: str) -> int:
    """Whitespace tokens (additive on the space-separated texts used here)."""
    return len(text.split())


def test_split_keeps_marks_on_the_piece_before():
    assert split_sentences("One, two. Three; four! Done") == ["One,", " two.", " Three;", " four!", " Done"]


def test_split_handles_cjk_marks_and_repeated_marks():
    assert split_sentences("甲，乙。丙...") == ["甲，", "乙。", "丙.", ".", "."]


def test_empty_text_has_no_chunks():
    assert split_sentences("") == []
    assert chunk_text("", char_count) == []


@given(texts)
def test_split_loses_nothing(text):
    pieces = split_sentences(text)
    assert "".join(pieces) == text
    assert all(pieces)


@given(texts, settings_)
@settings(max_examples=300)
def test_chunks_cover_every_piece_once_in_order(text, knobs):
    chunk_size, overlap, min_sentences = knobs
    pieces = split_sentences(text)
    spans = chunk_spans([len(p) for p in pieces], chunk_size, overlap, min_sentences)
    if not pieces:
        assert spans == []
        return
    assert spans[0][0] == 0 and spans[-1][1] == len(pieces)
    for (_, end0), (start1, end1) in zip(spans, spans[1:]):
        assert start1 == max(0, end0 - overlap), "each chunk starts `overlap` pieces before the previous end"
        assert end1 > end0
    chunks = chunk_text(text, char_count, chunk_size, overlap, min_sentences)
    assert chunks == ["".join(pieces[s:e]) for s, e in spans]
    new_parts = [chunks[0]] + ["".join(pieces[e0:e1]) for (_, e0), (_, e1) in zip(spans, spans[1:])]
    assert "".join(new_parts) == text, "dropping the overlaps gives back the text exactly once"


@given(texts, st.integers(1, 60), st.integers(0, 3))
@settings(max_examples=300)
def test_each_chunk_closes_on_the_piece_that_reaches_the_budget(text, chunk_size, overlap):
    pieces = split_sentences(text)
    tokens = [len(p) for p in pieces]
    spans = chunk_spans(tokens, chunk_size, overlap, min_sentences=1)
    first_new = 0
    for start, end in spans[:-1]:
        overlap_tokens = sum(tokens[start:first_new])
        assert sum(tokens[first_new:end]) >= chunk_size - overlap_tokens
        assert end - 1 == first_new or sum(tokens[first_new : end - 1]) < chunk_size - overlap_tokens
        first_new = end


def test_short_final_chunk_is_merged_with_only_its_new_pieces():
    text = "aaaa. bbbb. cccc. dddd. e."
    ours = chunk_text(text, char_count, chunk_size=12, overlap=1, min_sentences=3)
    ref = reference_chunk_text(text, char_count, chunk_size=12, overlap=1, min_sentences=3)
    assert ours == ["aaaa. bbbb. cccc.", " cccc. dddd. e."]
    assert ref[-1].count("dddd") == 2, "the reference appends the merged chunk's overlap piece again"


def test_overlap_applies_to_the_second_chunk_even_after_a_short_first_chunk():
    text = "x" * 30 + ". b. c. d. e. f. g."
    ours = chunk_text(text, char_count, chunk_size=20, overlap=2)
    ref = reference_chunk_text(text, char_count, chunk_size=20, overlap=2)
    assert ours[1].startswith("x" * 30 + ".")
    assert not ref[1].startswith("x"), "the reference skips this overlap"


def test_text_after_the_last_mark_is_kept():
    text = "one, two. tail without a mark"
    assert chunk_text(text, char_count, chunk_size=1000) == [text]
    assert "tail" not in "".join(reference_chunk_text(text, char_count, chunk_size=1000))


def test_hand_worked_case():
    # Pieces of 3 words each; budget 7, overlap 1. Chunk 1 closes after 3 pieces (9 >= 7). Its last piece
    # (3 tokens) is the overlap, so chunk 2 needs 7 - 3 = 4 new tokens: two pieces (6 >= 4), ending the text.
    text = "a b c. d e f. g h i. j k l. m n o."
    assert chunk_text(text, word_count, chunk_size=7, overlap=1, min_sentences=2) == [
        "a b c. d e f. g h i.",
        " g h i. j k l. m n o.",
    ]


@given(
    st.lists(
        st.tuples(st.text(alphabet="abcde ", min_size=1, max_size=12), st.sampled_from(SPLIT_MARKS)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 80),
    st.integers(0, 3),
    st.integers(1, 4),
)
@settings(max_examples=400)
def test_equals_the_reference_where_its_defects_cannot_trigger(parts, chunk_size, overlap, min_sentences):
    # Text ends with a mark (a), the first chunk holds more than `overlap` pieces (b), the tokenizer is
    # additive (c), and min_sentences <= overlap + 1 so a merged final chunk has no overlap to repeat (d).
    text = "".join(body + mark for body, mark in parts)
    min_sentences = min(min_sentences, overlap + 1)
    spans = chunk_spans([len(p) for p in split_sentences(text)], chunk_size, overlap, min_sentences)
    if spans[0][1] <= overlap:
        return
    assert chunk_text(text, char_count, chunk_size, overlap, min_sentences) == reference_chunk_text(
        text, char_count, chunk_size, overlap, min_sentences
    )


def test_defaults_equal_the_reference_on_a_long_text():
    text = " ".join(
        f"Clause {i} of the report names person {i % 7}," if i % 3 else f"Sentence {i} ends here." for i in range(600)
    )
    text += " Final sentence."
    ours = chunk_text(text, word_count)
    assert len(ours) > 2
    assert ours == reference_chunk_text(text, word_count)


def test_hf_counter_excludes_special_tokens_and_batches_consistently():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(bundled_embedder_path())
    count = HFTokenCounter(tokenizer)
    pieces = split_sentences("The archive of Quelbridge, founded in 1712, lies east; its keeper is Mirela Vantosk.")
    assert count("hello") == 1, "no [CLS]/[SEP] in a piece's count"
    assert count.batch(pieces) == [count(p) for p in pieces]
    assert chunk_text("".join(pieces), count, chunk_size=8) == chunk_text(
        "".join(pieces), lambda t: count(t), chunk_size=8
    )


def test_few_arms_warning_fires_only_when_the_median_sample_has_at_most_top_k_chunks():
    with pytest.warns(FewArmsWarning, match="median 4 chunks per sample against top_k 4.*nothing to choose"):
        assert warn_if_few_arms([2, 4, 9], 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_few_arms([2, 5, 6], 4)
        assert not warn_if_few_arms([], 4)

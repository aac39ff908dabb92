"""Preference pairs: selection, middle truncation, the token budget and the two exports."""

import json
import random

import pytest

from longmab_utils.pairs import (
    PairSkipped,
    build_dpo_example,
    build_pairs,
    context_budget,
    export_llamafactory,
    export_trl,
    fit_context,
    middle_truncate,
    run_pairs,
    select_pair,
)
from longmab_utils.prompts import cot_answer_prompt


class WordTokenizer:
    """A whitespace tokenizer with the call/decode slice of the Hugging Face API."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []

    def __call__(self, text, add_special_tokens=True):
        ids = []
        for word in text.split():
            if word not in self.vocab:
                self.vocab[word] = len(self.words)
                self.words.append(word)
            ids.append(self.vocab[word])
        return {"input_ids": ([999] if add_special_tokens else []) + ids}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(self.words[i] for i in ids if i != 999)


GOLD = "Oskar Thelm"
RESPONSES = ["Answer: Mirela", "Answer: Oskar Thelm", "no marker", "Answer: Oskar Thelm.", "Answer: Mirela"]


def test_select_pair_takes_a_max_and_a_min():
    chosen, rejected = select_pair(RESPONSES, GOLD, random.Random(0))
    assert chosen in (1, 3)
    assert rejected in (0, 2, 4)


def test_select_pair_ties_are_seeded_and_cover_all_candidates():
    picks = {select_pair(RESPONSES, GOLD, random.Random(seed)) for seed in range(60)}
    assert {c for c, _ in picks} == {1, 3}
    assert {r for _, r in picks} == {0, 2, 4}
    assert select_pair(RESPONSES, GOLD, random.Random(7)) == select_pair(RESPONSES, GOLD, random.Random(7))


def test_select_pair_none_when_all_scores_equal():
    assert select_pair(["Answer: a", "Answer: b", "nothing"], GOLD, random.Random(0)) is None
    assert select_pair([], GOLD, random.Random(0)) is None


@pytest.mark.parametrize(
    ("n", "budget", "expected"),
    [
        (10, 20, list(range(10))),
        (10, 10, list(range(10))),
        (10, 4, [0, 1, 8, 9]),
        (10, 5, [0, 1, 8, 9]),
        (10, 1, []),
        (10, 0, []),
        (10, -3, []),
    ],
)
def test_middle_truncate(n, budget, expected):
    assert middle_truncate(list(range(n)), budget) == expected


def test_fit_context_uses_the_reference_budget():
    tok = WordTokenizer()
    context = " ".join(f"w{i}" for i in range(100))
    question = "q1 q2 q3"
    responses = ["r " * 5, "r " * 9]
    # budget = 60 - 32 - 3 - 9 = 16: keep the first 8 and the last 8 words.
    assert context_budget(question, responses, tok, 60) == 16
    fitted, truncated = fit_context(context, question, responses, tok, max_prompt_length=60)
    assert truncated
    assert fitted.split() == [f"w{i}" for i in range(8)] + [f"w{i}" for i in range(92, 100)]
    assert fit_context("short context", question, responses, tok, 60) == ("short context", False)


def test_over_budget_sample_is_skipped_not_garbled():
    tok = WordTokenizer()
    with pytest.raises(PairSkipped) as info:
        fit_context("c " * 50, "q", ["r " * 40], tok, max_prompt_length=60)
    assert info.value.reason == "over_budget"


def test_build_dpo_example_fields():
    tok = WordTokenizer()
    example = build_dpo_example("s1", "Who founded it?", GOLD, "ctx " * 10, RESPONSES, tok, random.Random(42))
    assert example["prompt"] == cot_answer_prompt("ctx " * 10, "Who founded it?")
    assert example["chosen_score"] == 1.0 and example["rejected_score"] == 0.0
    assert example["chosen"] == RESPONSES[example["chosen_index"]]
    assert example["rejected"] == RESPONSES[example["rejected_index"]]
    assert example["context_truncated"] is False


def test_build_pairs_counts_skips_by_reason():
    tok = WordTokenizer()
    record = {
        "id": "a",
        "question": "q",
        "answer": GOLD,
        "context": "ctx",
        "rounds": [{"response": r} for r in RESPONSES],
    }
    tied = dict(record, id="b", rounds=[{"response": "x"}, {"response": "y"}])
    long = dict(record, id="c", rounds=[{"response": "Answer: Oskar Thelm " + "w " * 9000}, {"response": "x"}])
    examples, skipped = build_pairs([record, tied, long], tok)
    assert [e["id"] for e in examples] == ["a"]
    assert skipped == {"all_scores_equal": 1, "over_budget": 1}


def test_exports(tmp_path):
    tok = WordTokenizer()
    example = build_dpo_example("s1", "q", GOLD, "ctx", RESPONSES, tok, random.Random(1))
    export_trl([example], tmp_path / "trl.jsonl")
    trl = json.loads((tmp_path / "trl.jsonl").read_text())
    assert trl["prompt"] == [{"role": "user", "content": example["prompt"]}]
    assert trl["chosen"] == [{"role": "assistant", "content": example["chosen"]}]
    assert trl["rejected"] == [{"role": "assistant", "content": example["rejected"]}]
    data_file = export_llamafactory([example], tmp_path / "lf")
    assert json.loads(data_file.read_text()) == {k: example[k] for k in ("prompt", "chosen", "rejected")}
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    assert info["longmab_dpo"]["ranking"] is True
    assert info["longmab_dpo"]["file_name"] == data_file.name


def test_run_pairs_writes_every_artifact_and_a_summary(tmp_path):
    tok = WordTokenizer()
    record = {
        "id": "a",
        "question": "q",
        "answer": GOLD,
        "context": "c " * 50,
        "rounds": [{"response": r} for r in RESPONSES],
    }
    tied = dict(record, id="b", rounds=[{"response": "x"}, {"response": "y"}])
    summary = run_pairs([record, tied], tok, seed=3, max_prompt_length=80, out_dir=tmp_path)
    assert summary == {
        "samples": 2,
        "pairs": 1,
        "yield": 0.5,
        "skipped": {"all_scores_equal": 1},
        "context_truncated": 1,
    }
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert [p["id"] for p in pairs] == ["a"] and pairs[0]["chosen_score"] == 1.0 > pairs[0]["rejected_score"]
    full = json.loads((tmp_path / "pairs_summary.json").read_text())
    assert full["tokens"]["chosen"] == [len(pairs[0]["chosen"].split())]
    assert (tmp_path / "pairs_trl.jsonl").exists() and (tmp_path / "llamafactory" / "dataset_info.json").exists()


def test_a_samples_tie_break_does_not_depend_on_the_samples_before_it():
    from longmab_utils.pairs import tie_breaker

    tied = ["Answer: Vell", "Answer: vell", "Answer: Dorn", "Answer: Kest"]  # two best and two worst
    picks = {sample: select_pair(tied, "Vell", tie_breaker(42, sample)) for sample in ("a", "b", "c", "d", "e", "f")}
    again = {sample: select_pair(tied, "Vell", tie_breaker(42, sample)) for sample in reversed(picks)}
    assert picks == again and len(set(picks.values())) > 1  # per sample: fixed by its id, and ids differ

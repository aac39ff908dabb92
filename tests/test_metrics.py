"""Answer extraction and metrics, including the reference's quirks (METHOD.md section 4)."""

import pytest

from longmab_utils.metrics import (
    answer_metrics,
    exact_match,
    extract_answer,
    f1_score,
    normalize_answer,
    pair_score,
    reward_parts,
    rollout_reward,
    substring_exact_match,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Quick, brown fox!", "quick brown fox"),
        ("An apple a day", "apple day"),
        ("Theatre and anthem", "theatre and anthem"),
        ("  Zürich—Genève  ", "zürich—genève"),
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Reasoning: x.\nAnswer: Paris", ("paris", True)),
        ("Answer: wrong\nReasoning: again.\nAnswer:  Oslo ", ("oslo", True)),
        ("so the answer is: Rome", ("rome", True)),
        ("the final answer is: Bern", ("bern", True)),
        ("No marker here", ("no marker here", False)),
        ("Reasoning: done. Answer:", ("reasoning: done. answer:", False)),
        ("Answer: early. The answer is:", ("early. the answer is:", True)),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_marker_at_the_very_end_does_not_fall_back():
    # "answer:" is tried first; its last occurrence ends the text, so extraction fails although
    # "the answer is: lyon" is present earlier.
    assert extract_answer("The answer is: Lyon. Answer:") == ("the answer is: lyon. answer:", False)


def test_metrics_with_string_and_list_golds():
    assert exact_match("The Paris", "paris") == 1.0
    assert exact_match("Paris, France", ["paris"]) == 0.0
    assert substring_exact_match("Paris, France", ["Lyon", "paris"]) == 1.0
    assert f1_score("Paris France", "Paris") == pytest.approx(2 / 3)
    assert f1_score("Paris France", ["Lyon", "Paris France"]) == 1.0
    assert f1_score("", "Paris") == 0.0


def test_rollout_reward_scores_subem_on_the_whole_response():
    response = "Reasoning: Oskar Thelm founded Quelbridge.\nAnswer: I am not sure"
    assert rollout_reward(response, "Oskar Thelm") == pytest.approx(0.5)
    assert rollout_reward(response, "Oskar Thelm", subem_on="answer") == 0.0
    assert pair_score(response, "Oskar Thelm") == 0.0


def test_reward_without_marker_keeps_subem_only():
    assert rollout_reward("Oskar Thelm founded it", "Oskar Thelm") == pytest.approx(0.5)
    assert pair_score("Oskar Thelm founded it", "Oskar Thelm") == 0.0


def test_reward_parts_are_the_two_halves_of_the_rollout_reward():
    quoted = 'Reasoning: the document says "Oskar Thelm founded Quelbridge". So the answer is Oskar.'
    parts = reward_parts(quoted, "Oskar Thelm")
    assert parts == {"answer_line": False, "answer": "", "subem_response": 1.0, "f1_answer": 0.0}
    partial = "Reasoning: ...\nAnswer: Oskar"
    parts = reward_parts(partial, "Oskar Thelm")
    assert parts["answer_line"] and parts["answer"] == "oskar" and parts["f1_answer"] == pytest.approx(2 / 3)
    for response in (quoted, partial):
        halves = reward_parts(response, "Oskar Thelm")
        expected = (halves["subem_response"] + halves["f1_answer"]) / 2
        assert rollout_reward(response, "Oskar Thelm") == pytest.approx(expected)


def test_full_marks_and_partial_f1():
    assert rollout_reward("Reasoning: ...\nAnswer: Oskar Thelm", "Oskar Thelm") == 1.0
    assert pair_score("Answer: Oskar", "Oskar Thelm") == pytest.approx((0 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="subem_on"):
        rollout_reward("Answer: x", "x", subem_on="reasoning")


def test_answer_metrics():
    assert answer_metrics("Answer: the Oskar Thelm.", ["Oskar Thelm"]) == {"em": 1.0, "f1": 1.0, "subem": 1.0}
    assert answer_metrics("Oskar Thelm", ["Oskar Thelm"]) == {"em": 0.0, "f1": 0.0, "subem": 0.0}

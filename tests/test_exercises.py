"""Checked exercises: right answers pass, wrong ones stop with the hint, unanswered ones wait or use the solution."""

import numpy as np
import pytest

from longmab_utils.course.exercises import Exercises, WrongAnswer, agrees


def test_agrees_compares_numbers_within_tolerance_and_containers_item_by_item():
    assert agrees(0.1 + 0.2, 0.3)
    assert not agrees(0.31, 0.3)
    assert agrees(np.array([1, 2]), [1, 2])
    assert agrees({"a": [1.0, 2.0]}, {"a": (1, 2)})
    assert not agrees([1, 2], [1, 2, 3])
    assert not agrees("1", 1)
    assert not agrees(True, 1.0)


def test_a_right_answer_counts_as_solved(capsys):
    exercises = Exercises()
    exercises.check(4, 2 + 2, hint="add")
    assert (exercises.asked, exercises.solved) == (1, 1)
    assert "correct" in capsys.readouterr().out


def test_a_wrong_answer_stops_with_the_number_and_the_hint():
    exercises = Exercises()
    exercises.check(1, 1, hint="first")
    with pytest.raises(WrongAnswer, match=r"Exercise 2: 5 is not it\. Hint: count the chunks"):
        exercises.check(5, 4, hint="count the chunks")


def test_an_unanswered_exercise_prints_its_hint_unless_solutions_are_on(capsys):
    unanswered = Exercises()
    called = []
    unanswered.check(..., 3, hint="think", solution=lambda: called.append(1) or 3)
    assert (unanswered.asked, unanswered.solved) == (1, 0) and not called  # the worked answer stays unread
    assert "not answered yet" in capsys.readouterr().out
    solved = Exercises(solutions=True)
    solved.check(..., 3, hint="think", solution=lambda: 3.0)
    assert solved.solved == 1 and "worked answer 3.0" in capsys.readouterr().out
    with pytest.raises(WrongAnswer):
        Exercises(solutions=True).check(..., 3, hint="think", solution=lambda: 4)


def test_numpy_scalars_count_as_the_python_values_they_hold():
    assert agrees(np.True_, True) and not agrees(np.False_, True)
    assert agrees(np.int64(3), 3) and agrees(np.float32(0.5), 0.5) and agrees(True, np.bool_(True))
    assert not agrees(np.True_, 1.0)  # a bool is still not a number


def test_solutions_mode_fails_an_exercise_that_has_no_worked_answer():
    with pytest.raises(WrongAnswer, match="Exercise 1: solutions=True, but it has no worked answer"):
        Exercises(solutions=True).check(..., 3, hint="think")
    Exercises().check(..., 3, hint="think")  # a learner's unanswered exercise still just waits

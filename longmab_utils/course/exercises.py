"""Checked exercises: every notebook ends with a few, each answered in code and checked by `Exercises.check`.

Introduced in notebook 01. A learner replaces the `...` in an exercise cell with an answer; `check` says
"correct", or stops the cell with a hint. An unanswered exercise (`...`) prints its hint and moves on,
unless the notebook runs with `solutions=True` (what `reproduce` and the tests do): then the worked
answer is checked in its place, and an exercise without one fails. Worked answers live in `worked.py`, out of
the learner's cell; the cell passes one as `solution=lambda: worked.name(...)`, called only in solutions mode,
and each takes another route than the expected value (a hand formula against the kit's function).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class WrongAnswer(AssertionError):
    """An exercise's answer differs from the expected value; the message carries the hint."""


def agrees(answer: Any, expected: Any, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """Whether two answers agree: numbers within tolerance, sequences and mappings item by item, the rest by ==."""
    if hasattr(answer, "tolist"):  # numpy arrays and scalars (np.True_ included) as plain Python values
        return agrees(answer.tolist(), expected, rel_tol, abs_tol)
    if hasattr(expected, "tolist"):
        return agrees(answer, expected.tolist(), rel_tol, abs_tol)
    if isinstance(answer, bool) or isinstance(expected, bool):
        return isinstance(answer, bool) and isinstance(expected, bool) and answer == expected
    if isinstance(answer, int | float) and isinstance(expected, int | float):
        return math.isclose(float(answer), float(expected), rel_tol=rel_tol, abs_tol=abs_tol)
    if isinstance(answer, Mapping) and isinstance(expected, Mapping):
        same_keys = answer.keys() == expected.keys()
        return same_keys and all(agrees(answer[k], expected[k], rel_tol, abs_tol) for k in answer)
    if isinstance(answer, Sequence) and isinstance(expected, Sequence) and not isinstance(answer, str | bytes):
        return len(answer) == len(expected) and all(agrees(a, e, rel_tol, abs_tol) for a, e in zip(answer, expected))
    return answer == expected


@dataclass
class Exercises:
    """A notebook's exercises: numbers them, checks answers, and counts what was answered and solved."""

    solutions: bool = False
    """True: an unanswered exercise is checked with its worked answer (batch runs and tests)."""
    asked: int = 0
    solved: int = 0

    def check(
        self,
        answer: Any,
        expected: Any,
        *,
        hint: str,
        solution: Callable[[], Any] | None = None,
        rel_tol: float = 1e-6,
    ) -> None:
        """Check one exercise's answer against `expected`: says so when right or unanswered, else WrongAnswer."""
        self.asked += 1
        number = self.asked
        if answer is ... and self.solutions:
            if solution is None:
                raise WrongAnswer(f"Exercise {number}: solutions=True, but it has no worked answer (solution=...)")
            answer = solution()
            print(f"Exercise {number}: worked answer {answer!r}")
        if answer is ...:
            print(f"Exercise {number}: not answered yet (replace the ... above). Hint: {hint}")
            return
        if not agrees(answer, expected, rel_tol=rel_tol):
            raise WrongAnswer(f"Exercise {number}: {answer!r} is not it. Hint: {hint}")
        self.solved += 1
        print(f"Exercise {number}: correct ({answer!r}).")

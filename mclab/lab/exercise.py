"""Checks for the exercises at the end of each notebook, for learners and for nbgrader.

``check("Exercise 1", MY_ANSWER, expected)`` prints PASS or FAIL (with a hint) and returns True/False, or says the
exercise is not attempted while the answer is still ``None``. Opened by a learner it never raises, so a notebook runs
top to bottom answered or not. Graded (the environment variable ``MCLAB_GRADE=1``, which ``make grade`` sets for the
kernels nbgrader starts), a wrong or missing answer raises ``AssertionError``: the nbgrader test cell that made the
call scores zero, and the notebook still runs on to the next exercise. ``reject`` is the same check turned round —
the answer must match none of a list of plausible wrong values (unit slips, a neighbouring value copied); the hidden
tests use it. Introduced in notebook 00.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterable

__all__ = ["GRADE_ENV", "grading", "matches", "check", "reject"]

GRADE_ENV = "MCLAB_GRADE"


def grading() -> bool:
    """True when the notebook runs under the grader (``MCLAB_GRADE=1``), False when a learner runs it."""
    return os.environ.get(GRADE_ENV, "") == "1"


def matches(answer: Any, expected: Any | Callable[[Any], bool], *, rel_tol: float = 0.05) -> bool:
    """Whether ``answer`` matches ``expected`` (a value, or a predicate on the answer).

    Numbers match within ``rel_tol`` (relative); strings ignoring case and surrounding spaces; lists and sets as sets;
    tuples of numbers element by element. Returns False (never raises) for an answer of the wrong type.
    """
    if rel_tol < 0:
        raise ValueError(f"rel_tol={rel_tol} must be >= 0")
    if callable(expected):
        try:
            return bool(expected(answer))
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):  # an answer of the wrong shape
            return False
    if _is_number(expected):
        return _is_number(answer) and math.isclose(float(answer), float(expected), rel_tol=rel_tol)
    if isinstance(expected, str):
        return isinstance(answer, str) and answer.strip().lower() == expected.strip().lower()
    if isinstance(expected, tuple) and all(_is_number(e) for e in expected):
        return (isinstance(answer, (tuple, list)) and len(answer) == len(expected)
                and all(matches(a, e, rel_tol=rel_tol) for a, e in zip(answer, expected, strict=True)))
    if isinstance(expected, (list, tuple, set)):
        return isinstance(answer, (list, tuple, set)) and set(answer) == set(expected)
    return answer == expected


def check(title: str, answer: Any, expected: Any | Callable[[Any], bool], *, hint: str = "",
          rel_tol: float = 0.05) -> bool | None:
    """Compare a learner's ``answer`` with ``expected`` (see :func:`matches`) and say PASS or FAIL.

    Returns True (pass), False (fail) or None (the answer is still ``None``: "not attempted"). Under the grader
    (:func:`grading`) a fail or a missing answer raises ``AssertionError`` instead of returning.
    """
    if answer is None:
        print(f"{title}: not attempted yet — set your answer and re-run this cell")
        if grading():
            raise AssertionError(f"{title}: not attempted")
        return None
    ok = matches(answer, expected, rel_tol=rel_tol)
    print(f"{title}: {'PASS' if ok else 'FAIL'}" + ("" if ok or not hint else f" — hint: {hint}"))
    if not ok and grading():
        raise AssertionError(f"{title}: {answer!r} is not right")
    return ok


def reject(title: str, answer: Any, wrong: Iterable[Any], *, rel_tol: float = 0.05) -> bool | None:
    """Fail when ``answer`` matches any of the plausible ``wrong`` values (within ``rel_tol``).

    Returns True when it matches none, False when it matches one, None when the answer is still ``None``; under the
    grader the last two raise ``AssertionError``. Used by the hidden tests that nbgrader restores when it grades.
    """
    if answer is None:
        if grading():
            raise AssertionError(f"{title}: not attempted")
        return None
    hit = next((w for w in wrong if matches(answer, w, rel_tol=rel_tol)), None)
    if hit is not None:
        print(f"{title}: FAIL — this is a known slip")
        if grading():
            raise AssertionError(f"{title}: {answer!r} matches a known wrong answer")
        return False
    return True


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) or (
        hasattr(x, "dtype") and getattr(x, "ndim", 1) == 0 and not isinstance(x, str))

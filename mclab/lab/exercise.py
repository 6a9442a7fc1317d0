"""Checks for the exercises at the end of each notebook.

``check("Exercise 1", ANSWER, expected)`` prints PASS or FAIL (with a hint) and returns
True/False, or says the exercise is not attempted while the answer is still ``None``.
It never raises for a wrong answer, so a notebook runs top to bottom either way.
Introduced in notebook 00.
"""
from __future__ import annotations

import math
from typing import Any, Callable

__all__ = ["check"]


def check(title: str, answer: Any, expected: Any | Callable[[Any], bool], *, hint: str = "",
          rel_tol: float = 0.05) -> bool | None:
    """Compare a learner's ``answer`` with ``expected`` (a value, or a predicate on the answer).

    Numbers match within ``rel_tol``; strings ignoring case and surrounding spaces; lists and
    sets as sets. Returns True (pass), False (fail) or None (answer is still ``None``).
    """
    if answer is None:
        print(f"{title}: not attempted yet — set your answer and re-run this cell")
        return None
    if callable(expected):
        ok = bool(expected(answer))
    elif isinstance(expected, (int, float)) and not isinstance(expected, bool) and isinstance(answer, (int, float)):
        ok = math.isclose(float(answer), float(expected), rel_tol=rel_tol)
    elif isinstance(expected, str) and isinstance(answer, str):
        ok = answer.strip().lower() == expected.strip().lower()
    elif isinstance(expected, (list, tuple, set)) and isinstance(answer, (list, tuple, set)):
        ok = set(answer) == set(expected)
    else:
        ok = answer == expected
    print(f"{title}: {'PASS' if ok else 'FAIL'}" + ("" if ok or not hint else f" — hint: {hint}"))
    return ok

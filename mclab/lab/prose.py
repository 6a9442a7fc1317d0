"""Words chosen from numbers: the phrasing helpers behind the notebooks' *Interpret* cells.

An Interpret cell is rendered from what the notebook measured (``IPython.display.Markdown``); each clause picks
its words from the sign and the confidence interval of the number it describes. These helpers keep that choice
the same in every notebook (introduced in notebook 08, used by 12, 13b and 14).
"""
from __future__ import annotations

import math

__all__ = ["versus"]


def versus(lo: float, hi: float, *, above: str, below: str, within: str, ref: float = 1.0) -> str:
    """``above`` if the whole interval [lo, hi] lies above ``ref``, ``below`` if it lies below, else ``within``.

    ``lo``/``hi`` bound a 95 % confidence interval (a speed-up, a ratio of times, a difference in points with
    ``ref=0``). Returns one of the three phrases unchanged.
    """
    for name, v in (("lo", lo), ("hi", hi), ("ref", ref)):
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}={v!r} must be a finite number")
    if lo > hi:
        raise ValueError(f"lo={lo} must not exceed hi={hi} (an interval's lower bound comes first)")
    if lo > ref:
        return above
    if hi < ref:
        return below
    return within

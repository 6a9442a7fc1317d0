"""The source material's technique table (speed-up, compression, accuracy per technique) beside what was measured.

:data:`CLAIMS` holds the table as the source states it; :func:`strategy_matrix` sets each row beside the numbers a
notebook measured (speed-ups from :func:`mclab.deploy.speedup`, sizes, accuracy) and says where they differ.
Introduced in notebook 16.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CLAIMS", "strategy_matrix"]

# The source material's technique table (seed 001; operator fusion from seed 000's strategy matrix):
# technique -> (speed-up low, high (None: "or more")), size compression, accuracy change in points (low, high)
CLAIMS: dict[str, tuple[tuple[float, float | None], float, tuple[float, float]]] = {
    "INT8 quantisation": ((2, 4), 4, (-2, -1)),
    "FP16": ((1.5, 2), 2, (0, 0)),
    "50% pruning": ((1.5, 2), 2, (-5, -2)),
    "knowledge distillation": ((5, 10), 10, (-5, -3)),
    "TensorRT": ((2, 5), 1, (0, 0)),
    "operator fusion": ((1.2, 1.5), 1, (0, 0)),
    "lightweight architecture": ((10, None), 10, (-10, -5)),
}


def _verdict(value: float | None, lo: float, hi: float | None, below: str, above: str) -> str:
    if value is None:
        return "-"
    if value < lo - 1e-9:
        return below
    if hi is not None and value > hi + 1e-9:
        return above
    return "as claimed"


def strategy_matrix(measured: dict[str, dict[str, Any] | str]) -> "pd.DataFrame":
    """The source's technique table beside what was measured. ``measured`` maps each technique of
    :data:`CLAIMS` to ``{"speedup": x, "speedup_ci": (lo, hi), "compression": y, "accuracy_pts": z, "how": text}``
    (any value may be None when only part of it can run here) or to a string saying why it cannot be measured
    here. A technique left out is reported as not measured."""
    import pandas as pd

    unknown = sorted(set(measured) - set(CLAIMS))
    if unknown:
        raise ValueError(f"techniques {unknown} are not in the source's table; known: {list(CLAIMS)}")
    rows = []
    for tech, ((slo, shi), comp, (alo, ahi)) in CLAIMS.items():
        claim = {"technique": tech, "claimed speed-up": f"{slo:g}-{shi:g}x" if shi else f"{slo:g}x+",
                 "claimed compression": f"{comp:g}x",
                 "claimed accuracy [pts]": f"{alo:+g} to {ahi:+g}" if alo != ahi else "0"}
        m = measured.get(tech, "not measured in this run")
        if isinstance(m, str):
            rows.append({**claim, "measured speed-up": f"not measurable here: {m}" if not m.startswith("not ") else m})
            continue
        sp, ci, cr, acc = m.get("speedup"), m.get("speedup_ci"), m.get("compression"), m.get("accuracy_pts")
        speed = m.get("speedup_note") or (f"{sp:.2f}x" + (f" (95% CI {ci[0]:.2f}-{ci[1]:.2f})" if ci else "")
                                          if sp is not None else "not measurable here")
        rows.append({**claim, "measured speed-up": speed,
                     "measured compression": None if cr is None else f"{cr:.2f}x",
                     "measured accuracy [pts]": None if acc is None else f"{acc:+.2f}",
                     "speed vs claim": _verdict(sp, slo, shi, "slower than claimed", "faster than claimed"),
                     "size vs claim": _verdict(cr, 0.8 * comp, None, "less compression than claimed", ""),
                     "accuracy vs claim": _verdict(acc, alo - 0.5, ahi + 0.5, "larger loss than claimed",
                                                   "smaller loss than claimed"),
                     "how": m.get("how", "")})
    return pd.DataFrame(rows).set_index("technique")

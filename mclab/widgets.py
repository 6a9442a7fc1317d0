"""ipywidgets front ends over pure functions: move a slider, the figure is redrawn.

:func:`draw_bits` is the pure figure (usable without widgets, e.g. in a FAST notebook run);
:func:`bit_width_slider` puts a bit-width slider (2–16) and scheme toggles in front of it.
Introduced in notebook 04.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

__all__ = ["draw_bits", "bit_width_slider"]

_SCHEMES = ("asymmetric", "symmetric")
_GRANULARITIES = ("per-tensor", "per-channel")


def draw_bits(x: "torch.Tensor", bits: int = 8, scheme: str = "asymmetric", granularity: str = "per-tensor", *,
              fig: "Figure | None" = None) -> dict[str, Any]:
    """Three panels for quantising ``x`` (channels on axis 0) at ``bits``: the values against the integer
    grid, the histogram of the error, and SQNR against bit width beside the 6.02 dB-per-bit law.
    Returns {"sqnr_db", "scale" (first channel's), "levels", "fig"}."""
    import matplotlib.pyplot as plt
    import numpy as np

    from . import plots, quant

    if scheme not in _SCHEMES:
        raise ValueError(f"scheme={scheme!r}; allowed: {_SCHEMES}")
    if granularity not in _GRANULARITIES:
        raise ValueError(f"granularity={granularity!r}; allowed: {_GRANULARITIES}")
    sym, axis = scheme == "symmetric", (0 if granularity == "per-channel" else None)
    qp = quant.qparams(x, bits, symmetric=sym, axis=axis)
    x_hat = quant.dequantize(quant.quantize(x, qp), qp)
    sq = quant.sqnr_db(x, x_hat)
    curve = quant.sqnr_by_bits(x, range(2, 17), symmetric=sym, axis=axis)

    plots.use_style()
    fig = fig or plt.figure(figsize=(13, 3.8))
    fig.clf()
    ax1, ax2, ax3 = fig.subplots(1, 3)
    first = x[0].reshape(-1) if axis == 0 else x.reshape(-1)
    s0, z0 = float(qp.scale.reshape(-1)[0]), int(qp.zero_point.reshape(-1)[0])
    sample = first[:: max(1, first.numel() // 400)].numpy()
    grid = (np.arange(qp.qmin, qp.qmax + 1) - z0) * s0
    ax1.vlines(grid if grid.size <= 64 else grid[:: grid.size // 64], 0, 1, color="0.75", lw=0.8,
               label=f"grid: {qp.qmax - qp.qmin + 1} levels" + (" (every n-th drawn)" if grid.size > 64 else ""))
    ax1.scatter(sample, np.full(sample.size, 0.5) + np.random.default_rng(0).uniform(-0.3, 0.3, sample.size),
                s=6, color="C0", label="values")
    ax1.axvline(0, color="C3", lw=1.5, label=f"zero point {z0} → 0.0")
    ax1.set_yticks([])
    ax1.set_xlabel(plots.axis_label("value", "-"))
    ax1.set_title(f"{bits}-bit {scheme} grid" + (" (channel 0)" if axis == 0 else ""))
    ax1.legend(fontsize=8, loc="upper left")
    err = (x_hat - x).reshape(-1).numpy()
    ax2.hist(err, bins=60, color="C1")
    ax2.set_xlabel(plots.axis_label("quantisation error", "-"))
    ax2.set_ylabel(plots.axis_label("count", "values"))
    ax2.set_title(f"error (step {s0:.3g})")
    bs = np.array(list(curve))
    ax3.plot(bs, list(curve.values()), "o-", label=f"measured ({granularity}, {scheme})")
    ax3.plot(bs, curve[8] + 6.02 * (bs - 8), "k--", lw=1, label="6.02 dB per bit")
    ax3.scatter([bits], [sq], s=120, color="C3", zorder=3, label=f"{bits} bits: {sq:.1f} dB")
    ax3.set_xlabel(plots.axis_label("bit width", "bits"))
    ax3.set_ylabel(plots.axis_label("SQNR", "dB"))
    ax3.set_title("signal-to-quantisation-noise ratio")
    ax3.legend(fontsize=8)
    return {"sqnr_db": sq, "scale": s0, "levels": qp.qmax - qp.qmin + 1, "fig": fig}


def bit_width_slider(x: "torch.Tensor", bits: int = 8) -> Any:
    """A bit-width slider (2–16) with scheme and granularity toggles over :func:`draw_bits` for ``x``;
    returns the ipywidgets container (display it, or let the notebook show it as a cell's value)."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    out = w.Output()
    slider = w.IntSlider(value=bits, min=2, max=16, description="bits", continuous_update=False)
    scheme = w.ToggleButtons(options=_SCHEMES, description="scheme")
    gran = w.ToggleButtons(options=_GRANULARITIES, description="scales")

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            fig = draw_bits(x, slider.value, scheme.value, gran.value)["fig"]
            display(fig)
            plt.close(fig)

    for c in (slider, scheme, gran):
        c.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([slider]), scheme, gran, out])

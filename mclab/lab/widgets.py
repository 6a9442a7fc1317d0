"""ipywidgets front ends over pure functions: move a slider, the figure is redrawn.

:func:`draw_bits` is the pure figure (usable without widgets, e.g. in a FAST notebook run);
:func:`bit_width_slider` puts a bit-width slider (2–16) and scheme toggles in front of it.
:func:`live` puts sliders in front of any function that prints or displays a readout.
Introduced in notebook 04. :func:`draw_sparsity` and :func:`sparsity_slider` do the same for pruning
(notebook 06); :func:`draw_soft_labels` / :func:`soft_label_sliders` show a teacher's soft labels at a
temperature and alpha (notebook 07); :func:`draw_rank` / :func:`rank_slider` walk a measured rank sweep
(notebook 08).

Widgets need a running kernel. A static copy of a notebook (the HTML report of ``mclab report``,
a notebook viewer) keeps ordinary outputs but not what a widget drew, so every front end here
also leaves an ordinary output for the default values and a note (:func:`kernel_note`) saying so.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .notebooks import HEADLESS_ENV

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch
    from matplotlib.figure import Figure

__all__ = ["draw_bits", "bit_width_slider", "live", "kernel_note", "draw_sparsity", "sparsity_slider",
           "draw_soft_labels", "soft_label_sliders", "draw_rank", "rank_slider"]

_SCHEMES = ("asymmetric", "symmetric")
_GRANULARITIES = ("per-tensor", "per-channel")


def _first_draw(redraw: "Callable[[], Any]") -> None:
    """Draw the starting values into a slider's Output widget — but not in a headless run (papermill, ``make test``,
    ``make report``). There nbclient stands in for the front end and answers every output captured by an Output
    widget with a comm message sent on the kernel's shell channel while it waits on that same channel for the
    cell's reply; now and then the reply is never seen and the run hangs (jupyter/nbclient#312). A static copy
    keeps no widget output anyway: each notebook draws the default in an ordinary cell beside the controls."""
    if os.environ.get(HEADLESS_ENV) != "1":
        redraw()


def _check_choices(scheme: str, granularity: str) -> None:
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme={scheme!r}; allowed: {_SCHEMES}")
    if granularity not in _GRANULARITIES:
        raise ValueError(f"granularity={granularity!r}; allowed: {_GRANULARITIES}")


def draw_bits(x: "torch.Tensor", bits: int = 8, scheme: str = "asymmetric", granularity: str = "per-tensor", *,
              fig: "Figure | None" = None) -> dict[str, Any]:
    """Three panels for quantising ``x`` (channels on axis 0) at ``bits``: the values against the integer
    grid, the histogram of the error, and SQNR against bit width beside the 6.02 dB-per-bit law.
    Returns {"sqnr_db", "scale" (first channel's), "levels", "fig"}."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .. import plots, quant

    _check_choices(scheme, granularity)
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


def bit_width_slider(x: "torch.Tensor", bits: int = 8, scheme: str = "asymmetric",
                     granularity: str = "per-tensor") -> Any:
    """A bit-width slider (2–16) with scheme and granularity toggles over :func:`draw_bits` for ``x``,
    starting at ``bits``/``scheme``/``granularity``; displays :func:`kernel_note` and returns the ipywidgets
    container (display it, or let the notebook show it as a cell's value). A static copy of the notebook
    keeps no widget output: draw the default figure with :func:`draw_bits` in an ordinary cell beside it."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    out = w.Output()
    slider = w.IntSlider(value=bits, min=2, max=16, description="bits", continuous_update=False)
    _check_choices(scheme, granularity)
    start = (bits, scheme, granularity)
    scheme = w.ToggleButtons(options=_SCHEMES, value=scheme, description="scheme")
    gran = w.ToggleButtons(options=_GRANULARITIES, value=granularity, description="scales")

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            fig = draw_bits(x, slider.value, scheme.value, gran.value)["fig"]
            display(fig)
            plt.close(fig)

    for c in (slider, scheme, gran):
        c.observe(redraw, names="value")
    _first_draw(redraw)
    display(kernel_note("bits={}, {}, {}".format(*start)))
    return w.VBox([w.HBox([slider]), scheme, gran, out])


class _Note:
    """A plain output (HTML and text) that a static page keeps, unlike a widget."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        import html

        return f'<p class="mclab-kernel-note" style="color:#555;font-style:italic">ⓘ {html.escape(self.text)}</p>'

    def __repr__(self) -> str:
        return f"(i) {self.text}"


def kernel_note(defaults: str) -> _Note:
    """The note shown beside every widget: the controls need a running Jupyter kernel, and a static copy
    shows the output for ``defaults`` (e.g. ``"bits=8"``). Returns a displayable object."""
    if not defaults:
        raise ValueError("defaults='' ; name the default values the static output shows, e.g. 'bits=8'")
    return _Note(f"The controls need a running Jupyter kernel (JupyterLab: move one and the output below them "
                 f"is recomputed). A static copy of this notebook, such as the HTML report, shows only the "
                 f"output for the defaults ({defaults}).")


def live(update: "Callable[..., Any]", controls: "dict[str, Any]", *, button: str | None = None) -> Any:
    """Controls (ipywidgets value widgets, keyed by ``update``'s argument names) in front of ``update``,
    which prints or displays a readout. Shows ``update(**defaults)`` as an ordinary output first (what a
    static copy keeps), then :func:`kernel_note`, then the controls over an Output widget that ``update``
    redraws into when a control moves — or, with ``button`` (its label), only when the button is pressed.
    Returns the displayed ipywidgets container. Nothing is recomputed while a notebook runs headless:
    the callbacks fire only on a change made in a live front end. Introduced in notebook 02."""
    import ipywidgets as w
    from IPython.display import display

    if not callable(update):
        raise TypeError(f"update={update!r} must be callable")
    if not controls or not all(isinstance(c, w.ValueWidget) for c in controls.values()):
        raise TypeError(f"controls={controls!r}: need a non-empty dict of argument name -> ipywidgets value widget")

    def values() -> dict[str, Any]:
        return {k: c.value for k, c in controls.items()}

    result = update(**values())  # the static readout for the defaults
    if result is not None:
        display(result)
    display(kernel_note(", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values().items())))
    out = w.Output()

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            shown = update(**values())
            if shown is not None:
                display(shown)

    if button is None:
        for c in controls.values():
            c.observe(redraw, names="value")
        box = w.VBox([*controls.values(), out])
    else:
        run = w.Button(description=button)
        run.on_click(redraw)
        box = w.VBox([*controls.values(), run, out])
    display(box)
    return box


_PRUNE_KINDS = ("unstructured", "structured")


def _prune_config(kind: str, amount: float) -> Any:
    """The slider's pruning as a :mod:`mclab.prune` config, which checks ``amount`` at the boundary."""
    from .. import prune

    if kind not in _PRUNE_KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {_PRUNE_KINDS}")
    if kind == "unstructured":
        return prune.PruneConfig(amount, scope="global", permanent=True)
    return prune.ChannelConfig(amount)


def _sparsity_baseline(model: "torch.nn.Module", data: Any, example: "torch.Tensor") -> dict[str, Any]:
    from .. import flops, models, prune

    return {"accuracy": models.evaluate(model, data).accuracy, "params": prune.sparsity(model).nonzero_params,
            "macs": flops.count(model, example).macs}


def draw_sparsity(model: "torch.nn.Module", amount: float = 0.5, kind: str = "unstructured", *, data: Any,
                  example: "torch.Tensor", bn_data: Any = None, baseline: dict[str, Any] | None = None,
                  rounds: int = 4, fig: "Figure | None" = None) -> dict[str, Any]:
    """Prune a copy of ``model`` to ``amount`` and draw two panels: the weights (unstructured: histogram of every
    prunable weight, the removed band shaded; structured: histogram of the channels' mean |w|, removed ones
    apart) and accuracy, non-zero parameters, MACs a dense kernel executes and measured latency, each as % of
    the dense model. ``kind`` is "unstructured" (one global magnitude threshold, ``prune.prune_``) or
    "structured" (``prune.prune_channels``, then BatchNorm recalibrated on ``bn_data`` if given). Accuracy is
    ``mclab.models.evaluate`` on ``data``; latency is ``mclab.bench.compare`` of dense vs pruned on ``example``,
    interleaved for ``rounds`` rounds. ``baseline`` (this function's earlier ``"baseline"``) skips re-measuring
    the dense model. Returns {"amount", "kind", "accuracy", "params", "macs", "nonzero_macs", "latency_ms",
    "dense_latency_ms", "speedup", "baseline", "fig"}."""
    import copy

    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from .. import bench, flops, models, plots, prune

    cfg = _prune_config(kind, amount)
    amount = float(cfg.amount)
    base = baseline or _sparsity_baseline(model, data, example)
    layers = prune.prunable_layers(model)
    if kind == "unstructured":
        small = copy.deepcopy(model)
        prune.prune_(small, cfg)
    else:
        small = prune.prune_channels(model, cfg)
        if bn_data is not None:
            prune.recalibrate_bn_(small, bn_data)
    acc = models.evaluate(small, data).accuracy
    params = prune.sparsity(small).nonzero_params
    macs = flops.count(small, example).macs
    nz_macs = prune.nonzero_macs(small, example)

    ab = bench.compare(bench.inference_fn(model.eval()), bench.inference_fn(small.eval()), (example,), rounds=rounds,
                       calls_per_round=10, warmup=3, label_a="dense", label_b=f"{kind} {amount:.0%}")

    plots.use_style()
    fig = fig or plt.figure(figsize=(13, 3.8))
    fig.clf()
    ax1, ax2 = fig.subplots(1, 2)
    if kind == "unstructured":
        w = torch.cat([m.weight.detach().reshape(-1) for m in layers.values()])
        thr = prune.magnitude_threshold(w, amount)
        v = w.numpy()
        ax1.hist(v, bins=200, range=(-4 * v.std(), 4 * v.std()), color="C0", log=True)
        if thr > 0:
            ax1.axvspan(-thr, thr, color="C3", alpha=0.25, label=f"set to 0: |w| ≤ {thr:.3g} ({amount:.0%})")
            ax1.legend(fontsize=8, loc="upper right")
        ax1.set_xlabel(plots.axis_label("weight value (all Conv2d / Linear)", "-"))
        ax1.set_title("global magnitude threshold")
    else:
        plan = prune.plan_channels(model, cfg)
        kept, gone = [], []
        for g in plan.groups:
            score = prune.channel_scores(layers[g.producer].weight).numpy() / layers[g.producer].weight[0].numel()
            keep = np.zeros(score.size, bool)
            keep[plan.keep[g.producer]] = True
            kept += score[keep].tolist()
            gone += score[~keep].tolist()
        bins = np.linspace(0, max(kept + gone), 40)
        ax1.hist([kept, gone], bins=bins, stacked=True, color=["C0", "C3"],
                 label=[f"kept ({len(kept)})", f"removed ({len(gone)})"])
        ax1.legend(fontsize=8)
        ax1.set_xlabel(plots.axis_label("channel mean |w| (inner block convolutions)", "-"))
        ax1.set_title(f"{len(plan.groups)} prunable convolutions, {amount:.0%} of channels each")
    ax1.set_ylabel(plots.axis_label("count", "weights" if kind == "unstructured" else "channels"))
    names = ["accuracy", "non-zero params", "MACs (dense kernel)", "latency p50"]
    rel = [acc / base["accuracy"], params / base["params"], macs / base["macs"], ab.ratio]
    bars = ax2.barh(names[::-1], [100 * r for r in rel[::-1]], color=["C2", "C1", "C4", "C0"])
    labels = [f"{100 * acc:.1f} %", f"{params / 1e6:.2f} M", f"{macs / 1e6:.0f} M", f"{ab.b.p50_ms:.2f} ms"][::-1]
    for b, text in zip(bars, labels, strict=True):
        ax2.text(b.get_width() + 1, b.get_y() + b.get_height() / 2, text, va="center", fontsize=9)
    ax2.axvline(100, color="k", lw=1)
    ax2.set_xlim(0, 135)
    ax2.set_xlabel(plots.axis_label("share of the dense model", "%"))
    ax2.set_title(f"{kind} {amount:.0%}: {ab.speedup:.2f}x the dense speed")
    return {"amount": amount, "kind": kind, "accuracy": acc, "params": params, "macs": macs, "nonzero_macs": nz_macs,
            "latency_ms": ab.b.p50_ms, "dense_latency_ms": ab.a.p50_ms, "speedup": ab.speedup, "baseline": base,
            "fig": fig}


def sparsity_slider(model: "torch.nn.Module", *, data: Any, example: "torch.Tensor", bn_data: Any = None,
                    amount: float = 0.5, kind: str = "unstructured", rounds: int = 4,
                    initial: dict[str, Any] | None = None) -> Any:
    """A sparsity slider (0–95 %, steps of 5 %, recomputed when released) and an unstructured / structured
    toggle over :func:`draw_sparsity`; the dense model is measured once. ``initial`` (a :func:`draw_sparsity`
    result for the same ``amount`` and ``kind``) is shown at first instead of being recomputed. Returns the
    ipywidgets container. Widgets need a running kernel: a static copy keeps no widget output, so draw the
    default figure with :func:`draw_sparsity` in an ordinary cell beside it."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    _prune_config(kind, amount)  # checks kind and amount before anything is measured
    if initial is not None and (initial.get("amount") != amount or initial.get("kind") != kind):
        raise ValueError(f"initial was drawn for {initial.get('kind')} {initial.get('amount')}, "
                         f"the slider starts at {kind} {amount}")
    base = initial["baseline"] if initial is not None else _sparsity_baseline(model, data, example)
    out = w.Output()
    slider = w.FloatSlider(value=amount, min=0.0, max=0.95, step=0.05, description="sparsity",
                           readout_format=".0%", continuous_update=False)
    toggle = w.ToggleButtons(options=_PRUNE_KINDS, value=kind, description="pruning")

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            fig = draw_sparsity(model, slider.value, toggle.value, data=data, example=example, bn_data=bn_data,
                                baseline=base, rounds=rounds)["fig"]
            display(fig)
            plt.close(fig)

    for c in (slider, toggle):
        c.observe(redraw, names="value")
    if initial is None:
        _first_draw(redraw)
    else:
        def shown() -> None:
            with out:
                display(initial["fig"])

        _first_draw(shown)
    display(kernel_note(f"sparsity {amount:.0%}, {kind}"))
    return w.VBox([w.HBox([slider]), toggle, out])


# ----------------------------------------------------------------------------- distillation (notebook 07)


def draw_soft_labels(teacher_logits: "torch.Tensor", labels: "torch.Tensor", images: "torch.Tensor | None" = None, *,
                     temperature: float = 4.0, alpha: float = 0.9, fig: "Figure | None" = None) -> dict[str, Any]:
    """The teacher's softened outputs ("dark knowledge") for a few digits at ``temperature``: one bar chart per
    digit (its image inset when ``images`` is given) with the target the distillation loss pulls towards,
    ``alpha · softmax(t / T) + (1 − alpha) · one-hot``, and a panel of mean entropy against temperature.
    ``teacher_logits`` is (N, classes), ``labels`` (N,); up to 6 digits are drawn. Returns {"temperature",
    "alpha", "entropy_nats" (mean over the N digits), "top_prob" (mean), "dark_mass" (mean probability on
    the wrong classes), "fig"}."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .. import distill, plots

    now = distill.soft_label_stats(teacher_logits, labels, temperature)  # checks temperature and shapes
    target = distill.target_distribution(teacher_logits, labels, temperature=temperature, alpha=alpha).numpy()
    p = distill.soften(teacher_logits.detach().float(), temperature).numpy()
    n, k = p.shape
    show = min(6, n)
    plots.use_style()
    fig = fig or plt.figure(figsize=(14, 3.6))
    fig.clf()
    axes = fig.subplots(1, show + 1, gridspec_kw={"width_ratios": [1] * show + [1.6]})
    for i, ax in enumerate(axes[:show]):
        y = int(labels[i])
        ax.bar(range(k), p[i], color=["C3" if c == y else "C0" for c in range(k)], label=f"teacher, T={temperature:g}")
        ax.step(np.arange(k + 1) - 0.5, np.append(target[i], target[i][-1]), where="post", color="k", lw=1,
                label=f"loss target, α={alpha:g}")
        ax.set_ylim(0, 1.05)
        ax.set_xticks(range(k))
        ax.tick_params(labelsize=7)
        ax.set_title(f"digit {y}: {100 * (1 - p[i][y]):.0f} % elsewhere", fontsize=9)
        if images is not None:
            inset = ax.inset_axes([0.55, 0.55, 0.42, 0.42])
            inset.imshow(images[i, 0].numpy(), cmap="gray_r")
            inset.set_xticks([])
            inset.set_yticks([])
        if i == 0:
            ax.set_ylabel(plots.axis_label("probability", "-"))
            ax.legend(fontsize=7, loc="center right")
    temps = np.geomspace(0.5, 20, 40)
    entropies = [distill.soft_label_stats(teacher_logits, labels, T).entropy_nats for T in temps]
    axes[-1].plot(temps, entropies, color="C0", label="mean entropy of the soft labels")
    axes[-1].axhline(float(np.log(k)), color="0.5", ls="--", lw=1, label=f"uniform: ln {k} = {np.log(k):.2f}")
    axes[-1].scatter([temperature], [now.entropy_nats], s=80, color="C3", zorder=3,
                     label=f"T={temperature:g}: {now.entropy_nats:.2f} nats")
    axes[-1].set_xscale("log")
    axes[-1].set_xlabel(plots.axis_label("temperature T", "-"))
    axes[-1].set_ylabel(plots.axis_label("entropy", "nats"))
    axes[-1].legend(fontsize=7)
    axes[-1].set_title("higher T spreads the teacher's belief", fontsize=9)
    return {**now.as_dict(), "alpha": float(alpha), "fig": fig}


def soft_label_sliders(teacher_logits: "torch.Tensor", labels: "torch.Tensor", images: "torch.Tensor | None" = None, *,
                       temperature: float = 4.0, alpha: float = 0.9) -> Any:
    """Temperature (0.5–10) and alpha (0–1) sliders over :func:`draw_soft_labels`, recomputed when released;
    displays :func:`kernel_note` and returns the ipywidgets container. A static copy keeps no widget output:
    draw the default figure with :func:`draw_soft_labels` in an ordinary cell beside it."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .. import distill

    distill.DistillConfig(temperature=temperature, alpha=alpha)  # checks both before any widget is built
    out = w.Output()
    t_slider = w.FloatSlider(value=temperature, min=0.5, max=10.0, step=0.5, description="temperature",
                             continuous_update=False)
    a_slider = w.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05, description="alpha", continuous_update=False)

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            fig = draw_soft_labels(teacher_logits, labels, images, temperature=t_slider.value,
                                   alpha=a_slider.value)["fig"]
            display(fig)
            plt.close(fig)

    for c in (t_slider, a_slider):
        c.observe(redraw, names="value")
    _first_draw(redraw)
    display(kernel_note(f"temperature={temperature:g}, alpha={alpha:g}"))
    return w.VBox([w.HBox([t_slider, a_slider]), out])


# ----------------------------------------------------------------------------- low-rank (notebook 08)


def draw_rank(sweep: Any, rank: int, *, fig: "Figure | None" = None) -> dict[str, Any]:
    """Four panels for one layer of a :class:`mclab.lowrank.RankSweep` at ``rank`` (one of the swept ranks):
    the singular values with the kept ones marked, relative reconstruction error, parameters and MACs of the
    whole model as % of the dense model with the break-even rank, and accuracy (before and, where the sweep
    has it, after fine-tuning) with P50 latency. Returns the sweep's row at ``rank`` plus "break_even" and
    "fig"."""
    import matplotlib.pyplot as plt
    import numpy as np

    from .. import plots

    row = sweep.row(rank)  # ValueError for a rank that was not swept
    rows, dense = sweep.rows, sweep.dense
    ranks = np.array([r["rank"] for r in rows])
    plots.use_style()
    fig = fig or plt.figure(figsize=(15, 3.8))
    fig.clf()
    ax1, ax2, ax3, ax4 = fig.subplots(1, 4)
    s = np.asarray(sweep.singular_values)
    ax1.semilogy(np.arange(1, s.size + 1), s, color="0.6", label="discarded")
    ax1.semilogy(np.arange(1, rank + 1), s[:rank], color="C0", lw=2, label=f"kept (r={rank})")
    ax1.axvline(sweep.break_even, color="C3", ls="--", lw=1, label=f"break-even {sweep.break_even:.0f}")
    ax1.set_xlabel(plots.axis_label("index", "-"))
    ax1.set_ylabel(plots.axis_label("singular value", "-"))
    ax1.set_title(f"{sweep.layer}: {sweep.m}×{sweep.n}", fontsize=10)
    ax1.legend(fontsize=7)
    ax2.plot(ranks, [100 * r["rel_error"] for r in rows], "o-", color="C1")
    ax2.scatter([rank], [100 * row["rel_error"]], s=90, color="C3", zorder=3)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel(plots.axis_label("rank r", "-"))
    ax2.set_ylabel(plots.axis_label("‖W − AB‖ / ‖W‖", "%"))
    ax2.set_title(f"error {100 * row['rel_error']:.1f} %", fontsize=10)
    for key, label, color in (("params", "parameters", "C0"), ("macs", "MACs", "C4")):
        if dense.get(key):
            ax3.plot(ranks, [100 * r[key] / dense[key] for r in rows], "o-", color=color, label=label)
    ax3.axhline(100, color="k", lw=1, label="dense model")
    ax3.axvline(sweep.break_even, color="C3", ls="--", lw=1, label="break-even rank")
    ax3.set_xscale("log", base=2)
    ax3.set_xlabel(plots.axis_label("rank r", "-"))
    ax3.set_ylabel(plots.axis_label("share of the dense model", "%"))
    ax3.set_title(f"params {100 * row['params'] / dense['params']:.0f} % of dense", fontsize=10)
    ax3.legend(fontsize=7)
    if row.get("accuracy") is not None:
        ax4.plot(ranks, [100 * r["accuracy"] for r in rows], "o-", color="C2", label="factorised")
        if all(r.get("accuracy_finetuned") is not None for r in rows):
            ax4.plot(ranks, [100 * r["accuracy_finetuned"] for r in rows], "s--", color="C2", label="after fine-tuning")
        ax4.axhline(100 * dense["accuracy"], color="k", lw=1, label="dense")
        ax4.scatter([rank], [100 * row["accuracy"]], s=90, color="C3", zorder=3)
        ax4.set_ylabel(plots.axis_label("accuracy", "%"))
        ax4.legend(fontsize=7, loc="lower right")
    ax4.set_xscale("log", base=2)
    ax4.set_xlabel(plots.axis_label("rank r", "-"))
    if row.get("p50_ms") is not None:
        lat = ax4.twinx()
        lat.plot(ranks, [r["p50_ms"] for r in rows], ":", color="C0")
        lat.axhline(dense["p50_ms"], color="C0", lw=0.8, ls="-.")
        lat.set_ylabel(plots.axis_label("latency p50 (dotted; dense dash-dot)", "ms"), color="C0", fontsize=8)
        ax4.set_title(f"{row['p50_ms']:.3f} ms vs dense {dense['p50_ms']:.3f} ms", fontsize=10)
    fig.tight_layout()
    return {**row, "break_even": sweep.break_even, "fig": fig}


def rank_slider(sweep: Any, rank: int | None = None) -> Any:
    """A rank slider over the ranks of a :class:`mclab.lowrank.RankSweep` (recomputed when released) in front of
    :func:`draw_rank`; every value it offers was measured by the sweep. Displays :func:`kernel_note` and returns
    the ipywidgets container; draw the default with :func:`draw_rank` in an ordinary cell beside it."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    ranks = [r["rank"] for r in sweep.rows]
    rank = ranks[len(ranks) // 2] if rank is None else rank
    sweep.row(rank)  # ValueError for a rank that was not swept
    out = w.Output()
    slider = w.SelectionSlider(options=ranks, value=rank, description="rank", continuous_update=False)

    def redraw(*_: Any) -> None:
        with out:
            out.clear_output(wait=True)
            fig = draw_rank(sweep, slider.value)["fig"]
            display(fig)
            plt.close(fig)

    slider.observe(redraw, names="value")
    _first_draw(redraw)
    display(kernel_note(f"rank={rank}"))
    return w.VBox([w.HBox([slider]), out])

from __future__ import annotations

import matplotlib
import pytest
import torch

from mclab.lab import notebooks, widgets

matplotlib.use("Agg")


def test_draw_bits_reports_what_it_draws():
    x = torch.randn(8, 200, generator=torch.Generator().manual_seed(0))
    r4 = widgets.draw_bits(x, 4, "symmetric", "per-channel")
    r8 = widgets.draw_bits(x, 8, "asymmetric", "per-tensor")
    assert r4["levels"] == 16 and r8["levels"] == 256 and r8["sqnr_db"] > r4["sqnr_db"] + 15
    assert len(r8["fig"].axes) == 3


def test_slider_redraws_on_change(monkeypatch, capsys):
    monkeypatch.delenv(notebooks.HEADLESS_ENV, raising=False)  # a live front end: the default is drawn at once
    drawn = []
    real = widgets.draw_bits
    monkeypatch.setattr(widgets, "draw_bits", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    box = widgets.bit_width_slider(torch.randn(4, 50), bits=6)
    slider = box.children[0].children[0]
    assert (slider.min, slider.max, slider.value) == (2, 16, 6)
    capsys.readouterr()
    slider.value = 3
    assert [d["levels"] for d in drawn] == [2**6, 2**3]  # the default, then the value the slider moved to
    assert "Figure(" in capsys.readouterr().out  # and the new figure was displayed


@pytest.mark.parametrize("headless", [False, True])
def test_headless_runs_draw_nothing_into_output_widgets_until_a_control_moves(monkeypatch, headless):
    # papermill's stand-in front end can hang on output captured by an Output widget (jupyter/nbclient#312)
    drawn = []
    real = widgets.draw_bits
    monkeypatch.setattr(widgets, "draw_bits", lambda *a, **k: drawn.append(a[1]) or real(*a, **k))
    if headless:
        monkeypatch.setenv(notebooks.HEADLESS_ENV, "1")
    else:
        monkeypatch.delenv(notebooks.HEADLESS_ENV, raising=False)
    box = widgets.bit_width_slider(torch.randn(4, 50), bits=6)
    assert drawn == ([] if headless else [6])
    box.children[0].children[0].value = 3
    assert drawn[-1] == 3


@pytest.mark.parametrize("kw, match", [({"scheme": "log"}, "scheme='log'"), ({"granularity": "per-row"}, "granularity"),
                                       ({"bits": 1}, "bits=1")])
def test_bad_choices(kw, match):
    with pytest.raises(ValueError, match=match):
        widgets.draw_bits(torch.randn(2, 8), **kw)


def test_slider_starts_where_asked_and_notes_the_kernel(capsys):
    box = widgets.bit_width_slider(torch.randn(4, 50), bits=4, scheme="symmetric", granularity="per-channel")
    assert (box.children[1].value, box.children[2].value) == ("symmetric", "per-channel")
    assert "running Jupyter kernel" in capsys.readouterr().out and "bits=4, symmetric, per-channel" in str(
        widgets.kernel_note("bits=4, symmetric, per-channel"))


def test_live_shows_the_defaults_statically_then_recomputes_on_change(capsys):
    import ipywidgets as w

    seen = []
    box = widgets.live(lambda n, scale: seen.append((n, scale)),
                       {"n": w.IntSlider(3, 0, 10), "scale": w.FloatSlider(0.5)})
    shown = capsys.readouterr().out
    assert seen == [(3, 0.5)] and "n=3, scale=0.5" in shown and "running Jupyter kernel" in shown
    box.children[0].value = 7
    assert seen[-1] == (7, 0.5)
    seen.clear()
    manual = widgets.live(lambda n: seen.append(n), {"n": w.IntSlider(1, 0, 5)}, button="Recompute")
    manual.children[0].value = 4
    assert seen == [1], "with a button, moving the slider alone recomputes nothing"
    manual.children[1].click()
    assert seen == [1, 4]


@pytest.mark.parametrize("update, controls, match", [(None, {"n": None}, "callable"), (print, {}, "non-empty"),
                                                     (print, {"n": 3}, "value widget")])
def test_live_bad_arguments(update, controls, match):
    with pytest.raises(TypeError, match=match):
        widgets.live(update, controls)


def _sparsity_setup():
    from mclab import data, models

    model = models.small_cnn(8).eval()
    return model, data.digits("val", size=16), torch.randn(1, 1, 16, 16)


def test_draw_sparsity_reports_what_it_measured():
    from mclab import flops

    model, ds, x = _sparsity_setup()
    un = widgets.draw_sparsity(model, 0.5, "unstructured", data=ds, example=x, rounds=2)
    dense_macs = flops.count(model, x).macs
    assert un["macs"] == dense_macs == un["baseline"]["macs"] and un["nonzero_macs"] < 0.6 * dense_macs
    assert 0.45 < un["params"] / un["baseline"]["params"] < 0.6 and len(un["fig"].axes) == 2
    st = widgets.draw_sparsity(model, 0.5, "structured", data=ds, example=x, bn_data=ds, baseline=un["baseline"],
                               rounds=2)
    assert st["macs"] < 0.5 * dense_macs and st["params"] < 0.6 * un["baseline"]["params"]
    assert st["latency_ms"] > 0 and st["dense_latency_ms"] > 0 and st["speedup"] > 0  # measured, not asserted on
    with pytest.raises(ValueError, match="kind='channel'"):
        widgets.draw_sparsity(model, 0.5, "channel", data=ds, example=x)
    with pytest.raises(ValueError, match=r"amount=1.0 is outside \[0, 1\)"):
        widgets.draw_sparsity(model, 1.0, data=ds, example=x)


def test_sparsity_slider_reuses_the_static_figure_and_redraws_on_change():
    model, ds, x = _sparsity_setup()
    first = widgets.draw_sparsity(model, 0.5, data=ds, example=x, rounds=2)
    box = widgets.sparsity_slider(model, data=ds, example=x, initial=first, rounds=2)
    slider, toggle = box.children[0].children[0], box.children[1]
    assert (slider.min, slider.max, slider.value, slider.continuous_update) == (0.0, 0.95, 0.5, False)
    slider.value = 0.8  # recomputes into the Output widget
    toggle.value = "structured"
    with pytest.raises(ValueError, match="initial was drawn for unstructured 0.5"):
        widgets.sparsity_slider(model, data=ds, example=x, amount=0.3, initial=first)

from __future__ import annotations

import matplotlib
import pytest
import torch

from mclab import widgets

matplotlib.use("Agg")


def test_draw_bits_reports_what_it_draws():
    x = torch.randn(8, 200, generator=torch.Generator().manual_seed(0))
    r4 = widgets.draw_bits(x, 4, "symmetric", "per-channel")
    r8 = widgets.draw_bits(x, 8, "asymmetric", "per-tensor")
    assert r4["levels"] == 16 and r8["levels"] == 256 and r8["sqnr_db"] > r4["sqnr_db"] + 15
    assert len(r8["fig"].axes) == 3


def test_slider_redraws_on_change():
    x = torch.randn(4, 50)
    box = widgets.bit_width_slider(x, bits=6)
    slider, out = box.children[0].children[0], box.children[-1]
    assert (slider.min, slider.max, slider.value) == (2, 16, 6)
    slider.value = 3  # triggers a redraw into the Output widget without error
    assert out is not None


@pytest.mark.parametrize("kw, match", [({"scheme": "log"}, "scheme='log'"), ({"granularity": "per-row"}, "granularity"),
                                       ({"bits": 1}, "bits=1")])
def test_bad_choices(kw, match):
    with pytest.raises(ValueError, match=match):
        widgets.draw_bits(torch.randn(2, 8), **kw)

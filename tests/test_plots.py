from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mclab import plots  # noqa: E402


def teardown_function():
    plt.close("all")


def test_distribution_marks_percentiles_with_units():
    x = np.arange(1, 101, dtype=float)
    ax = plots.distribution(x, unit="ms", budgets={"real-time": 30})
    assert ax.get_xlabel() == "latency [ms]" and "[" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith(f"P50 = {np.percentile(x, 50):.3g}") for lab in labels)
    assert any("real-time" in lab for lab in labels)


def test_pareto_front():
    # (latency lower better, accuracy higher better): point 2 is dominated by point 1
    assert plots.pareto_front([1, 2, 3, 4], [70, 80, 75, 90]) == [0, 1, 3]
    with pytest.raises(ValueError, match="x_better"):
        plots.pareto_front([1], [1], x_better="smaller")


def test_tradeoff_bars_triangle():
    ax = plots.tradeoff([1, 2], [3, 4], ["a", "b"], x_name="latency", x_unit="ms", y_name="acc", y_unit="%")
    assert "[ms]" in ax.get_xlabel() and "[%]" in ax.get_ylabel()
    ax = plots.bars({"fp32": 4.0, "int8": 1.0}, name="size", unit="MB", baseline="fp32")
    assert "0.25×" in " ".join(t.get_text() for t in ax.texts)
    ax = plots.triangle({"m": (1, 0, 0)})
    assert len(ax.collections) >= 1
    with pytest.raises(ValueError, match="unit"):
        plots.axis_label("x", "")
    with pytest.raises(ValueError, match="equal lengths"):
        plots.tradeoff([1], [1, 2], ["a"], x_name="a", x_unit="s", y_name="b", y_unit="s")
    with pytest.raises(ValueError, match="three non-negative"):
        plots.triangle({"m": (0, 0, 0)})


def test_roofline_draws_the_roof_and_ridge():
    ax = plots.roofline(100.0, 10.0, [1.0, 50.0], [8.0, 60.0], ["memory-bound", "compute-bound"])
    line = ax.get_lines()[0]
    xs, ys = line.get_data()
    assert np.allclose(ys, np.minimum(100.0, 10.0 * xs))  # the roof is min(peak, bandwidth × intensity)
    assert any("ridge 10.0" in t.get_text() for t in ax.get_legend().get_texts())
    with pytest.raises(ValueError, match="equal lengths"):
        plots.roofline(1, 1, [1], [1, 2], ["a"])

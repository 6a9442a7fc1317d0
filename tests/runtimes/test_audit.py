"""mclab.runtimes.audit: the kit's defaults timed against each plug-in's other settings (KNOBS)."""
from __future__ import annotations

import pytest

from mclab import runtimes
from mclab.runtimes import audit

SHAPE = (3, 16, 16)


@pytest.fixture(scope="module")
def result(tiny_module):
    return runtimes.audit_defaults(tiny_module(), ("torch:fp32", "onnxruntime:fp32", "tensorrt:fp32"), threads=1,
                                   input_shape=SHAPE, rounds=2, calls_per_round=2, warmup=1)


def test_rows_exist_and_best_is_never_slower_than_the_default(result):
    for runtime in ("torch", "onnxruntime"):
        row = result.row(runtime)
        assert row.ok and row.computes_in == "fp32" and row.default_ms > 0
        assert 0 < row.ratio <= 1  # the default is a candidate for best
        assert row.met or row.ratio < 0.9  # MISSED needs the best clearly faster, and below 90 %
        labels = {v.label for v in row.variants}
        assert "default" in labels and len(labels) >= 1 + sum(len(v) - 1 for v in audit.knobs_of(runtime).values())
        for v in row.variants:  # FP32 knobs keep the answer within rounding
            assert v.status == "ok" and v.max_abs_diff < 1e-4, v


def test_unavailable_runtime_is_a_skipped_row(result, monkeypatch):
    if runtimes.available("tensorrt")[0]:
        pytest.skip("tensorrt is available here")
    assert result.row("tensorrt").status.startswith("skipped: ")
    assert "tensorrt" in str(result) and result.to_frame().shape[0] == 3
    d = result.as_dict()
    assert {r["verdict"] for r in d["rows"]} <= {"met", "MISSED"} | {r["status"] for r in d["rows"]}


def test_a_knob_that_is_not_a_build_option_is_a_valueerror(tiny_module):
    with pytest.raises(ValueError, match="not a build option of runtime='onnxruntime'"):
        runtimes.audit_defaults(tiny_module(), ("onnxruntime",), threads=1, input_shape=SHAPE,
                                knobs={"onnxruntime": {"turbo": (False, True)}})
    with pytest.raises(ValueError, match="runtime 'nope' is unknown"):
        runtimes.audit_defaults(tiny_module(), ("nope",), threads=1, input_shape=SHAPE)


def test_every_plugin_knob_is_a_build_option_with_the_default_first():
    import inspect

    for runtime in runtimes.RUNTIMES:
        knobs = audit.knobs_of(runtime)  # raises ValueError for a knob build does not take
        params = inspect.signature(runtimes.plugin(runtime).build).parameters
        for name, values in knobs.items():
            assert params[name].default == values[0], (runtime, name)


def test_a_failing_variant_is_reported_not_raised(tiny_module):
    a = runtimes.audit_defaults(tiny_module(), ("onnxruntime:fp32",), threads=1, input_shape=SHAPE, rounds=2,
                                calls_per_round=1, warmup=0, knobs={"onnxruntime": {"level": ("all", "fastest")}})
    row = a.row("onnxruntime")
    assert row.ok and row.best == {} and row.ratio == 1.0 and row.met
    assert "level=fastest failed" in row.reason


@pytest.mark.parametrize(("per_round", "best"), [([1.05, 1.02, 1.0], {}), ([0.5, 0.55, 0.6], {"level": "basic"})])
def test_ratio_is_the_statistic_its_interval_is_of(tiny_module, monkeypatch, per_round, best):
    """A machine that drifts between rounds: the P50s pooled over the rounds say the variant is faster whatever the
    rounds say. The row's ratio, "best" and verdict follow the per-round ratios, so 1 / ratio lies inside
    speedup_ci (notebook 11 once printed "2.61x the default's speed" beside "CI 0.95-1.00x")."""
    from mclab import bench

    def lat(label, samples):
        return bench.LatencyResult(label, samples, samples[0], 0, 1, 1, "cpu", {}, 0.0)

    def drifting(fns, *args, **kwargs):
        (base, _), *rest = fns.items()
        default = lat(base, [10.0] * 3 + [1.0] * 2 + [9.0])  # pooled P50 9.5 ms
        variant = lat("v", [10.5] * 3 + [1.0] * 3)  # pooled P50 5.75 ms
        return {lab: bench.ABResult(base, lab, per_round, default, variant) for lab, _ in rest}

    monkeypatch.setattr(bench, "compare_many", drifting)
    row = runtimes.audit_defaults(tiny_module(), ("onnxruntime:fp32",), threads=1, input_shape=SHAPE, rounds=3,
                                  calls_per_round=1, warmup=0,
                                  knobs={"onnxruntime": {"level": ("all", "basic")}}).row("onnxruntime")
    variant = next(v for v in row.variants if v.settings)
    assert variant.p50_ms < 0.7 * row.default_ms  # the pooled P50s alone would crown the variant
    assert row.best == best and row.ratio == pytest.approx(min(1.0, sorted(per_round)[1]))
    if best:
        lo, hi = row.speedup_ci
        assert lo <= 1 / row.ratio <= hi and not row.met  # clearly faster: the default is MISSED
    else:
        assert row.ratio == 1.0 and row.met and row.speedup_ci is None


def test_the_best_variants_ratio_lies_in_its_interval(result):
    for runtime in ("torch", "onnxruntime"):
        row = result.row(runtime)
        if row.best:
            lo, hi = row.speedup_ci
            assert lo <= 1 / row.ratio <= hi, row

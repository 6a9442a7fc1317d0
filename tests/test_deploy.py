"""mclab.deploy: a report checked against a scenario, Pareto, the loop on a small model, bad input."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from mclab import deploy, scenarios
from mclab.models import small_cnn
from mclab.scenarios import Constraint, Scenario


def _report(name="v", **kw) -> deploy.Report:
    base = dict(variant=name, runtime="onnxruntime", precision="fp32", accuracy=0.95, ci95=(0.94, 0.96), n_test=1000,
                latency_p50_ms=5.0, latency_p90_ms=6.0, latency_p99_ms=8.0, throughput_qps=600.0, model_size_mb=12.0,
                params=1000, peak_memory_mb=50.0, energy_mj=10.0, power_w=0.1, rate_per_s=10.0, cost_usd_per_day=20.0)
    return deploy.Report(**{**base, **kw})


def test_report_metrics_are_the_scenario_vocabulary():
    m = _report(peak_memory_mb=None).metrics()
    assert set(m) <= set(scenarios.METRICS) and m["peak_memory_mb"] is None and m["params_m"] == 0.001
    assert {"latency_p99_ms", "throughput_qps", "model_size_mb", "accuracy", "accuracy_drop_pts", "power_w",
            "energy_mj", "cost_usd_per_day"} <= set(m)
    for s in scenarios.SCENARIOS.values():  # every preset limit is measured by a report, or marked unmeasurable
        assert all(c.metric in m or not c.check(None).measurable for c in s.constraints), s.key


def test_presets_validate_reports_as_before():
    mobile = deploy.validate(_report(model_size_mb=9.0, accuracy_drop_pts=1.0, power_w=1.0), "mobile")
    assert mobile.passed and [c.metric for c in mobile.checks] == [
        "model_size_mb", "latency_p99_ms", "power_w", "accuracy_drop_pts"]
    video = deploy.validate(_report(throughput_qps=14.0, latency_p99_ms=70.0), "realtime_video")
    assert [c.metric for c in video.failed] == ["throughput_qps", "latency_p99_ms"]
    assert "not measurable here: map" in video.summary()
    cloud = deploy.validate(_report(throughput_qps=600.0, accuracy=0.97, cost_usd_per_day=500.0), "cloud")
    assert cloud.passed and "soft limits missed: cost_usd_per_day" in cloud.summary()
    iot = scenarios.scenario("iot")
    low = deploy.validate(_report(accuracy=0.72, accuracy_drop_pts=20.0, model_size_mb=0.5, peak_memory_mb=50.0), iot)
    assert low.passed  # the source expects a TinyML model at 70-80 %: the floor decides, the 2-point rule advises
    strict_edge = scenarios.scenario("edge").with_limits(power_w=0.05)
    assert not deploy.validate(_report(peak_memory_mb=50.0), strict_edge).passed


def test_bad_constraints_are_named():
    with pytest.raises(ValueError, match="scenario='phone'.*mobile"):
        deploy.validate(_report(), "phone")
    with pytest.raises(TypeError, match="Scenario"):
        deploy.validate(_report(), {"power_w": 1})
    with pytest.raises(ValueError, match="steps="):
        deploy.OptimiseConfig(steps=("quantise", "magic"))
    with pytest.raises(ValueError, match="prune_amount"):
        deploy.OptimiseConfig(prune_amount=1.0)


def test_validate_gives_margins_and_only_hard_limits_block():
    c = Scenario("t", (Constraint("latency_p99_ms", "<=", 10), Constraint("model_size_mb", "<=", 10),
                       Constraint("accuracy", ">=", 0.9), Constraint("cost_usd_per_day", "<=", 5, soft=True)))
    v = deploy.validate(_report(), c)
    rows = {ch.metric: ch for ch in v.checks}
    assert rows["latency_p99_ms"].ok and rows["latency_p99_ms"].margin == pytest.approx(2.0)
    assert rows["accuracy"].ok and rows["accuracy"].margin == pytest.approx(0.05)
    assert rows["model_size_mb"].ok is False and rows["model_size_mb"].margin == pytest.approx(-2.0)
    assert rows["cost_usd_per_day"].ok is False and not rows["cost_usd_per_day"].hard
    assert not v.passed and [c.metric for c in v.failed] == ["model_size_mb"]
    assert "model_size_mb is 12 MB, 2 MB over the limit (<= 10)" in v.summary()
    ok = deploy.validate(_report(model_size_mb=9.0), c)
    assert ok.passed and "soft limits missed: cost_usd_per_day" in ok.summary()
    assert deploy.validate(_report(model_size_mb=10.0), c).passed  # "<=": on the limit is inside
    with pytest.raises(TypeError, match="Report"):
        deploy.validate({"latency_p99_ms": 1}, c)


def test_pareto_keeps_exactly_the_non_dominated_variants():
    rs = [_report("big", accuracy=0.97, latency_p99_ms=10, model_size_mb=40),
          _report("int8", accuracy=0.96, latency_p99_ms=6, model_size_mb=10),
          _report("worse", accuracy=0.95, latency_p99_ms=7, model_size_mb=12),   # int8 beats it on everything
          _report("tiny", accuracy=0.90, latency_p99_ms=1, model_size_mb=0.1)]
    assert deploy.pareto(rs, {"accuracy": "max", "latency_p99_ms": "min"}) == [0, 1, 3]
    assert deploy.pareto(rs, {"accuracy": "max", "latency_p99_ms": "min", "model_size_mb": "min"}) == [0, 1, 3]
    with pytest.raises(ValueError, match="2 or 3"):
        deploy.pareto(rs, {"accuracy": "max"})
    with pytest.raises(ValueError, match="'speed' is not a Report metric"):
        deploy.pareto(rs, {"speed": "max", "accuracy": "max"})
    with pytest.raises(ValueError, match="'best'"):
        deploy.pareto(rs, {"accuracy": "best", "latency_p99_ms": "min"})


def test_contradictory_constraints_fail_before_any_work(tmp_path):
    model = small_cnn(4)
    base = (deploy.Variant("FP32 baseline", model, str(tmp_path / "x.onnx")), _report("FP32 baseline"))
    c = Scenario("impossible", (Constraint("accuracy", ">=", 0.999), Constraint("model_size_mb", "<", 1e-6)))
    with pytest.raises(ValueError, match=r"contradictory constraints 'impossible': accuracy >= 0.999 is above .*"
                                         r"model_size_mb < 1e-06 is far below"):
        deploy.optimise(model, c, baseline=base)
    with pytest.raises(TypeError, match="Scenario"):
        deploy.optimise(model, {"power_w": 1})


@pytest.fixture(scope="module")
def tiny_trail(tmp_path_factory):
    torch.manual_seed(0)
    pc = deploy.ProfileConfig(latency_min_time_s=0.1, throughput_s=0.2, energy_s=0.5, memory=True, batch=8)
    cfg = deploy.OptimiseConfig(steps=("quantise", "runtime"), profile=pc, work_dir=str(tmp_path_factory.mktemp("dep")))
    # an untrained model (accuracy ~10 %) whose FP32 file (~30 kB) is too big: only INT8 fits
    c = Scenario("t", (Constraint("model_size_mb", "<=", 0.02), Constraint("accuracy", ">=", 0.01),
                       Constraint("latency_p99_ms", "<=", 1000), Constraint("peak_memory_mb", "<=", 500)))
    return deploy.optimise(small_cnn(8).eval(), c, cfg, reports={})


def test_optimise_runs_every_step_and_profiles_for_real(tiny_trail):
    t = tiny_trail
    assert [s.step for s in t.steps] == ["baseline", "quantise"]
    base, q = t.steps[0].report, t.steps[1].report
    assert 1.5 < base.model_size_mb / q.model_size_mb < 4.5  # INT8 weights; on a tiny model QDQ nodes weigh too
    assert q.params == base.params and q.accuracy_drop_pts == pytest.approx(100 * (base.accuracy - q.accuracy))
    for r in (base, q):
        assert 0 < r.latency_p50_ms <= r.latency_p90_ms <= r.latency_p99_ms and r.throughput_qps > 0
        assert r.peak_memory_mb is not None and r.peak_memory_mb >= 0 and r.energy_mj > 0
        assert r.power_w == pytest.approx(r.energy_mj / 1e3 * r.rate_per_s)
        assert r.kinds["energy"] in ("measured", "estimated")
        assert r.ci95[0] <= r.accuracy <= r.ci95[1] and r.n_test > 100
    assert [c.metric for c in t.steps[0].validation.failed] == ["model_size_mb"] and t.passed


def test_the_loop_stops_at_the_first_passing_step_and_reuses_profiles(tmp_path):
    pc = deploy.ProfileConfig(latency_min_time_s=0.1, throughput_s=0.2, energy_s=0.5, memory=False, batch=8)
    cfg = deploy.OptimiseConfig(steps=("quantise", "runtime"), profile=pc, work_dir=str(tmp_path))
    cache: dict = {}
    model = small_cnn(8).eval()
    size_only = Scenario("small", (Constraint("model_size_mb", "<=", 0.02),))  # FP32 (~0.03 MB) fails, INT8 passes
    t = deploy.optimise(model, size_only, cfg, reports=cache)
    assert [s.step for s in t.steps] == ["baseline", "quantise"] and t.passed and t.final.step == "quantise"
    assert not t.steps[0].validation.passed and "model_size_mb" in t.steps[0].validation.summary()
    before = dict(cache)
    t2 = deploy.optimise(model, dataclasses.replace(size_only, key="again"), cfg, reports=cache)
    assert cache.keys() == before.keys() and t2.steps[1].report is t.steps[1].report  # nothing measured twice
    assert t.as_dict()["final"] == "quantise" and "small:" in t.summary()


def test_measure_variant_rejects_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        deploy.measure_variant(deploy.Variant("gone", small_cnn(4), str(tmp_path / "gone.onnx")))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.onnx' is not a readable ONNX model"):
        deploy.measure_variant(deploy.Variant("bad", small_cnn(4), str(bad)), deploy.ProfileConfig(memory=False))
    with pytest.raises(TypeError, match="Variant"):
        deploy.measure_variant("model.onnx")

"""mclab.deploy: presets as limits, validation margins, Pareto, the loop on a small model, bad input."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from mclab import deploy
from mclab.models import small_cnn


def _report(name="v", **kw) -> deploy.Report:
    base = dict(variant=name, runtime="onnxruntime", precision="fp32", accuracy=0.95, ci95=(0.94, 0.96), n_test=1000,
                latency_p50_ms=5.0, latency_p90_ms=6.0, latency_p99_ms=8.0, throughput_qps=600.0, model_size_mb=12.0,
                params=1000, peak_memory_mb=50.0, energy_mj=10.0, power_w=0.1, rate_per_s=10.0, cost_usd_per_day=20.0)
    return deploy.Report(**{**base, **kw})


def test_presets_map_the_scenarios_onto_measurable_limits():
    m = deploy.constraints("mobile")
    assert m.limits() == {"latency_p99_ms": 100, "model_size_mb": 10, "max_accuracy_drop_pts": 2.0, "power_w": 2}
    assert m.rate_per_s == deploy.PRESET_RATES["mobile"] and m.soft == ()
    v = deploy.constraints("realtime_video")
    assert v.min_throughput_qps == 15 and v.latency_p99_ms == 66  # min(66 ms, 1000 / 15 fps)
    assert [k for k, _ in v.not_measurable] == ["map"]
    c = deploy.constraints("cloud")
    assert c.min_accuracy == 0.95 and c.min_throughput_qps == 500 and c.soft == ("cost_usd_per_day",)
    iot = deploy.constraints("iot")
    assert iot.limits() == {"model_size_mb": 1, "peak_memory_mb": 100, "min_accuracy": 0.7, "max_accuracy_drop_pts": 2.0,
                            "power_w": 1}
    assert iot.soft == ("max_accuracy_drop_pts",)  # the source expects a TinyML model at 70-80 %
    assert deploy.constraints("edge", power_w=5).power_w == 5  # overrides
    assert "not measurable" in deploy.constraints("realtime_video").table().loc["map", "kind"]


def test_bad_constraints_are_named():
    with pytest.raises(ValueError, match="scenario='phone'.*mobile"):
        deploy.constraints("phone")
    with pytest.raises(ValueError, match="set no limit"):
        deploy.Constraints()
    with pytest.raises(ValueError, match="latency_p99_ms=-1"):
        deploy.Constraints(latency_p99_ms=-1)
    with pytest.raises(ValueError, match="min_accuracy=95.*fraction"):
        deploy.Constraints(min_accuracy=95)
    with pytest.raises(ValueError, match="soft names unknown"):
        deploy.Constraints(power_w=1, soft=("speed",))
    with pytest.raises(ValueError, match="rate_per_s"):
        deploy.Constraints(power_w=1, rate_per_s=0)
    with pytest.raises(ValueError, match="steps="):
        deploy.OptimiseConfig(steps=("quantise", "magic"))
    with pytest.raises(ValueError, match="prune_amount"):
        deploy.OptimiseConfig(prune_amount=1.0)


def test_validate_gives_margins_and_only_hard_limits_block():
    c = deploy.Constraints(name="t", latency_p99_ms=10, model_size_mb=10, min_accuracy=0.9, cost_usd_per_day=5,
                           soft=("cost_usd_per_day",))
    v = deploy.validate(_report(), c)
    rows = {ch.constraint: ch for ch in v.checks}
    assert rows["latency_p99_ms"].ok and rows["latency_p99_ms"].margin == pytest.approx(2.0)
    assert rows["min_accuracy"].ok and rows["min_accuracy"].margin == pytest.approx(0.05)
    assert rows["model_size_mb"].ok is False and rows["model_size_mb"].margin == pytest.approx(-2.0)
    assert rows["cost_usd_per_day"].ok is False and not rows["cost_usd_per_day"].hard
    assert not v.passed and [c.constraint for c in v.failed] == ["model_size_mb"]
    assert "model_size_mb is 12 MB, 2 MB over the limit 10" in v.summary()
    ok = deploy.validate(_report(model_size_mb=9.0), c)
    assert ok.passed and "soft limits missed: cost_usd_per_day" in ok.summary()
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
    c = deploy.Constraints(name="impossible", min_accuracy=0.999, model_size_mb=1e-6)
    with pytest.raises(ValueError, match=r"contradictory constraints 'impossible': min_accuracy=0.999 is above .*"
                                         r"model_size_mb=1e-06 is far below"):
        deploy.optimise(model, c, baseline=base)
    with pytest.raises(TypeError, match="Constraints"):
        deploy.optimise(model, {"power_w": 1})


@pytest.fixture(scope="module")
def tiny_trail(tmp_path_factory):
    torch.manual_seed(0)
    pc = deploy.ProfileConfig(latency_min_time_s=0.1, throughput_s=0.2, energy_s=0.5, memory=True, batch=8)
    cfg = deploy.OptimiseConfig(steps=("quantise", "runtime"), profile=pc, work_dir=str(tmp_path_factory.mktemp("dep")))
    # an untrained model (accuracy ~10 %) whose FP32 file (~30 kB) is too big: only INT8 fits
    c = deploy.Constraints(name="t", model_size_mb=0.02, min_accuracy=0.01, latency_p99_ms=1000, peak_memory_mb=500)
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
        assert r.power_w == pytest.approx(r.energy_mj / 1e3 * r.rate_per_s) and r.kinds["energy"] in ("measured", "estimated")
        assert r.ci95[0] <= r.accuracy <= r.ci95[1] and r.n_test > 100
    assert [c.constraint for c in t.steps[0].validation.failed] == ["model_size_mb"] and t.passed


def test_the_loop_stops_at_the_first_passing_step_and_reuses_profiles(tmp_path):
    pc = deploy.ProfileConfig(latency_min_time_s=0.1, throughput_s=0.2, energy_s=0.5, memory=False, batch=8)
    cfg = deploy.OptimiseConfig(steps=("quantise", "runtime"), profile=pc, work_dir=str(tmp_path))
    cache: dict = {}
    model = small_cnn(8).eval()
    size_only = deploy.Constraints(name="small", model_size_mb=0.02)  # FP32 (~0.03 MB) fails, INT8 passes
    t = deploy.optimise(model, size_only, cfg, reports=cache)
    assert [s.step for s in t.steps] == ["baseline", "quantise"] and t.passed and t.final.step == "quantise"
    assert not t.steps[0].validation.passed and "model_size_mb" in t.steps[0].validation.summary()
    before = dict(cache)
    t2 = deploy.optimise(model, dataclasses.replace(size_only, name="again"), cfg, reports=cache)
    assert cache.keys() == before.keys() and t2.steps[1].report is t.steps[1].report  # nothing measured twice
    assert t.as_dict()["final"] == "quantise" and "small:" in t.summary()


def test_profile_rejects_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        deploy.profile(deploy.Variant("gone", small_cnn(4), str(tmp_path / "gone.onnx")))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        deploy.profile(deploy.Variant("bad", small_cnn(4), str(bad)), deploy.ProfileConfig(memory=False))
    with pytest.raises(TypeError, match="Variant"):
        deploy.profile("model.onnx")

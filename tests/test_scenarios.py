from __future__ import annotations

import dataclasses

import pytest

from mclab import scenarios
from mclab.lab import glossary
from mclab.scenarios import Constraint, Scenario


def test_six_families_five_scenarios():
    assert [f.key for f in scenarios.METRIC_FAMILIES] == [
        "performance", "resources", "accuracy", "energy", "reliability", "cost"]
    assert set(scenarios.SCENARIOS) == {"mobile", "realtime_video", "cloud", "edge", "iot"}
    for f in scenarios.METRIC_FAMILIES:
        assert all(k in scenarios.METRICS for k in f.metrics)
    for s in scenarios.SCENARIOS.values():
        assert set(s.core) <= set(scenarios.METRICS) and set(s.expected) <= set(scenarios.METRICS)
        assert s.rate_per_s > 0 and all(isinstance(c, Constraint) for c in s.constraints)


def test_source_constraints_are_encoded():
    mobile = scenarios.scenario("mobile")
    assert {str(c) for c in mobile.constraints} == {
        "model_size_mb < 10", "latency_p99_ms < 100", "power_w < 2", "accuracy_drop_pts < 2"}
    video = scenarios.scenario("realtime_video")
    # FPS > 15 is the throughput of a stream of frames, beside one frame within 1/15 s
    assert {str(c) for c in video.constraints} >= {"throughput_qps > 15", "latency_p99_ms < 66", "map > 0.4"}
    assert "FPS" in video.limit("throughput_qps").note
    cloud = scenarios.scenario("cloud")
    assert cloud.limit("cost_usd_per_day").soft and not cloud.limit("accuracy").soft
    iot = scenarios.scenario("iot")
    assert str(iot.limit("accuracy")) == "accuracy >= 0.7" and iot.limit("accuracy_drop_pts").soft
    assert {k: s.rate_per_s for k, s in scenarios.SCENARIOS.items()} == {
        "mobile": 10, "realtime_video": 30, "cloud": 500, "edge": 30, "iot": 1}
    assert "not measurable" in video.table().loc["map", "kind"]
    assert cloud.table().loc["cost_usd_per_day", "kind"] == "soft"


def test_check_pass_fail_incomplete():
    mobile = scenarios.scenario("mobile")
    good = {"model_size_mb": 5, "latency_p99_ms": 50, "power_w": 1.5, "accuracy_drop_pts": 1.0}
    assert mobile.check(good).verdict == "PASS" and mobile.check(good).passed
    r = mobile.check({"model_size_mb": 12, "latency_p99_ms": 50, "accuracy_drop_pts": 0.5})
    assert r.verdict == "FAIL" and not r.passed and [c.metric for c in r.missing] == ["power_w"]
    assert [c.metric for c in r.failed] == ["model_size_mb"] and r.failed[0].margin == pytest.approx(-2)
    assert "model_size_mb is 12 MB, 2 MB over the limit (< 10)" in r.summary()
    assert mobile.check({"model_size_mb": 5}).verdict == "INCOMPLETE"
    assert mobile.check({**good, "power_w": None}).verdict == "INCOMPLETE"  # None: not measured
    # the boundary is strict, as the source writes it ("< 10 MB"): on the limit the margin is 0 and it fails
    edge = mobile.check({**good, "model_size_mb": 10})
    assert edge.verdict == "FAIL" and edge.failed[0].margin == 0
    assert "not measured" in str(r) and r.as_dict()["verdict"] == "FAIL"


def test_margins_point_inside_for_both_directions():
    cloud = scenarios.scenario("cloud")
    v = cloud.check({"throughput_qps": 600, "accuracy": 0.9, "cost_usd_per_day": 250, "accuracy_drop_pts": 1},
                    variant="int8")
    rows = {c.metric: c for c in v.checks}
    assert rows["throughput_qps"].ok and rows["throughput_qps"].margin == pytest.approx(100)
    assert rows["accuracy"].ok is False and rows["accuracy"].margin == pytest.approx(-0.05)
    assert "accuracy is 0.9 fraction, 0.05 fraction under the limit (> 0.95)" in v.summary()
    # a soft limit is reported but never blocks
    ok = cloud.check({"throughput_qps": 600, "accuracy": 0.97, "cost_usd_per_day": 250, "accuracy_drop_pts": 1})
    assert ok.passed and rows["cost_usd_per_day"].status == "FAIL (soft)"
    assert "soft limits missed: cost_usd_per_day" in ok.summary()


def test_a_metric_the_kit_cannot_measure_is_listed_not_blocking():
    video = scenarios.scenario("realtime_video")
    v = video.check({"throughput_qps": 100, "latency_p99_ms": 10, "accuracy_drop_pts": 0.5})
    m = next(c for c in v.checks if c.metric == "map")
    assert m.ok is None and not m.measurable and m.status.startswith("not measurable here")
    assert v.passed and "not measurable here: map" in v.summary()
    assert not scenarios.scenario("mobile").check({}).passed  # a measurable metric left out does block


def test_with_limits_overrides_adds_and_drops():
    mobile = scenarios.scenario("mobile")
    m = mobile.with_limits(latency_p99_ms=50, peak_memory_mb=300, power_w=None)
    assert str(m.limit("latency_p99_ms")) == "latency_p99_ms < 50" and "100" in m.limit("latency_p99_ms").note
    assert str(m.limit("peak_memory_mb")) == "peak_memory_mb <= 300" and m.limit("power_w") is None
    assert mobile.limit("latency_p99_ms").value == 100  # the preset itself is unchanged
    assert scenarios.scenario("iot").with_limits(accuracy_drop_pts=3).limit("accuracy_drop_pts").soft
    custom = Scenario("mine", [Constraint("accuracy", ">=", 0.9)], rate_per_s=2)
    assert custom.constraints == (Constraint("accuracy", ">=", 0.9),) and custom.check({"accuracy": 0.9}).passed
    assert dataclasses.replace(mobile, rate_per_s=20).rate_per_s == 20


def test_bad_input_names_what_is_allowed():
    with pytest.raises(ValueError, match="scenario='phone'.*choose one of"):
        scenarios.scenario("phone")
    with pytest.raises(ValueError, match="unknown metrics"):
        scenarios.scenario("iot").check({"latency": 3})
    with pytest.raises(ValueError, match="measured\\['power_w'\\]='low'"):
        scenarios.scenario("iot").check({"power_w": "low"})
    with pytest.raises(ValueError, match="op="):
        Constraint("latency_p99_ms", "=<", 3)
    with pytest.raises(ValueError, match="metric='latency_ms' is unknown"):
        Constraint("latency_ms", "<", 3)
    with pytest.raises(ValueError, match="value=-1 .*positive"):
        Constraint("latency_p99_ms", "<", -1)
    with pytest.raises(ValueError, match="value=0 .*positive"):
        Constraint("power_w", "<", 0)
    with pytest.raises(ValueError, match="value=95 for accuracy is a fraction"):
        Constraint("accuracy", ">", 95)
    with pytest.raises(ValueError, match="value=100 for accuracy_drop_pts must be below 100"):
        Constraint("accuracy_drop_pts", "<", 100)
    with pytest.raises(ValueError, match="sets no limit"):
        Scenario("empty", ())
    with pytest.raises(ValueError, match="more than once"):
        Scenario("twice", (Constraint("power_w", "<", 1), Constraint("power_w", "<", 2)))
    with pytest.raises(ValueError, match="rate_per_s=0"):
        Scenario("idle", (Constraint("power_w", "<", 1),), rate_per_s=0)
    with pytest.raises(TypeError, match="Constraint"):
        Scenario("loose", ({"power_w": 1},))
    with pytest.raises(ValueError, match="speed=3: unknown metric"):
        scenarios.scenario("mobile").with_limits(speed=3)


def test_glossary_lookup_both_ways():
    assert {t.en for t in glossary.lookup("量化")} >= {"quantisation"}
    assert glossary.lookup("distillation")[0].zh == "知识蒸馏"
    assert glossary.lookup("知識蒸餾")[0].en == "knowledge distillation"
    for word in ("延迟", "吞吐量", "量化", "剪枝", "蒸馏"):
        assert glossary.lookup(word), word
    with pytest.raises(ValueError):
        glossary.lookup("  ")

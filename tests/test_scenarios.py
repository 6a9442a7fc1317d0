from __future__ import annotations

import pytest

from mclab import glossary, scenarios


def test_six_families_five_scenarios():
    assert [f.key for f in scenarios.METRIC_FAMILIES] == [
        "performance", "resources", "accuracy", "energy", "reliability", "cost"]
    assert set(scenarios.SCENARIOS) == {"mobile", "realtime_video", "cloud", "edge", "iot"}
    for f in scenarios.METRIC_FAMILIES:
        assert all(k in scenarios.METRICS for k in f.metrics)
    for s in scenarios.SCENARIOS.values():
        assert set(s.core) <= set(scenarios.METRICS) and set(s.expected) <= set(scenarios.METRICS)


def test_source_constraints_are_encoded():
    mobile = scenarios.scenario("mobile")
    assert {str(c) for c in mobile.constraints} == {"model_size_mb < 10", "latency_ms < 100", "power_w < 2"}
    assert {str(c) for c in scenarios.scenario("realtime_video").constraints} >= {"fps > 15", "latency_ms < 66"}


def test_check_pass_fail_incomplete():
    mobile = scenarios.scenario("mobile")
    assert mobile.check({"model_size_mb": 5, "latency_ms": 50, "power_w": 1.5}).verdict == "PASS"
    r = mobile.check({"model_size_mb": 12, "latency_ms": 50})
    assert r.verdict == "FAIL" and not r.passed and r.missing == ["power_w < 2"]
    assert mobile.check({"model_size_mb": 5}).verdict == "INCOMPLETE"
    # the boundary is strict, as the source writes it ("< 10 MB")
    assert mobile.check({"model_size_mb": 10, "latency_ms": 1, "power_w": 1}).verdict == "FAIL"
    assert "not measured" in str(r) and r.as_dict()["verdict"] == "FAIL"


def test_bad_input_names_what_is_allowed():
    with pytest.raises(ValueError, match="choose one of"):
        scenarios.scenario("phone")
    with pytest.raises(ValueError, match="unknown metrics"):
        scenarios.scenario("iot").check({"latency": 3})
    with pytest.raises(ValueError, match="op="):
        scenarios.Constraint("latency_ms", "=<", 3)


def test_glossary_lookup_both_ways():
    assert {t.en for t in glossary.lookup("量化")} >= {"quantisation"}
    assert glossary.lookup("distillation")[0].zh == "知识蒸馏"
    assert glossary.lookup("知識蒸餾")[0].en == "knowledge distillation"
    for word in ("延迟", "吞吐量", "量化", "剪枝", "蒸馏"):
        assert glossary.lookup(word), word
    with pytest.raises(ValueError):
        glossary.lookup("  ")

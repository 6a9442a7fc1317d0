from __future__ import annotations

import time

import numpy as np
import pytest

from mclab import bench
from mclab.bench import BenchConfig


def test_percentiles_on_known_samples():
    x = np.arange(1, 101, dtype=float)  # 1..100
    p = bench.percentiles(x)
    assert p[50] == pytest.approx(50.5) and p[90] == pytest.approx(90.1) and p[99] == pytest.approx(99.01)


def test_latency_result_percentile_matches_numpy():
    r = bench.measure(lambda: None, config=BenchConfig(warmup=0, min_iters=200, min_time_s=0, n_boot=10))
    for q in (25, 50, 99, 99.9):
        assert r.percentile(q) == pytest.approx(float(np.percentile(r.samples_ms, q)))
    assert (r.p50_ms, r.p90_ms, r.p99_ms) == (r.percentile(50), r.percentile(90), r.percentile(99))
    with pytest.raises(ValueError):
        r.percentile(101)


def test_flags():
    assert bench.flags_for(np.full(10, 5.0)) == ["p90_few_samples", "p99_few_samples"]
    assert bench.flags_for(np.full(100, 5.0)) == ["p99_few_samples"]
    assert bench.flags_for(np.full(700, 5.0)) == []
    noisy = np.r_[np.full(350, 1.0), np.full(350, 2.0)]
    assert bench.flags_for(noisy) == ["noisy"]


def test_measure_counts_and_stop_rules():
    calls = []
    r = bench.measure(lambda: calls.append(1), config=BenchConfig(warmup=3, min_iters=50, min_time_s=0), label="noop")
    assert r.n == 50 and len(calls) == 1 + 3 + 50 and r.cold_ms >= 0
    assert "p99_few_samples" in r.flags and "P99" in str(r) and "not trustworthy" in str(r)
    # min time dominates when it comes later
    r = bench.measure(time.sleep, 0.001, config=BenchConfig(warmup=0, min_iters=5, min_time_s=0.05))
    assert r.n >= 20 and r.wall_s >= 0.05 and r.p50_ms >= 1.0
    s = r.summary()
    assert {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_per_s", "samples", "flags", "machine"} <= set(s)
    assert s["throughput_kind"].startswith("derived")


def test_measured_sleep_is_accurate():
    r = bench.measure(time.sleep, 0.002, config=BenchConfig(warmup=1, min_iters=30, min_time_s=0))
    assert 2.0 <= r.p50_ms < 4.0


@pytest.mark.parametrize("kwargs, match", [
    ({"min_iters": 0}, "min_iters=0"),
    ({"warmup": -1}, "warmup=-1"),
    ({"threads": 0}, "threads=0"),
    ({"device": "tpu"}, "device="),
    ({"max_iters": 5, "min_iters": 10}, "max_iters"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BenchConfig(**kwargs)


def test_raising_callable_surfaces_with_context():
    def boom():
        raise RuntimeError("shape mismatch")

    with pytest.raises(bench.BenchError, match="boom raised during cold call 0: RuntimeError: shape mismatch") as e:
        bench.measure(boom)
    assert isinstance(e.value.__cause__, RuntimeError)
    n = iter(range(100))

    def later():
        if next(n) == 5:
            raise ValueError("bad input")

    with pytest.raises(bench.BenchError, match="timed call 2"):
        bench.measure(later, config=BenchConfig(warmup=3, min_iters=10, min_time_s=0))
    with pytest.raises(TypeError, match="callable"):
        bench.measure(42)


def test_throughput_measured_with_concurrency():
    r = bench.throughput(time.sleep, 0.005, batch=4, concurrency=2, duration_s=0.3)
    # two workers each sleeping 5 ms: ~400 calls/s -> ~1600 items/s
    assert 500 < r.items_per_s < 1700 and r.kind.startswith("measured") and r.concurrency == 2
    with pytest.raises(ValueError, match="concurrency"):
        bench.throughput(time.sleep, 0.0, concurrency=0)


def test_batch_sweep_budget_and_knee():
    sweep = bench.batch_sweep(lambda b: time.sleep(0.001 * (1 + b / 4)), lambda b: (b,), [1, 4, 16],
                              config=BenchConfig(warmup=1, min_iters=10, min_time_s=0))
    assert sweep.best_under_budget(4.0) == 4 and sweep.best_under_budget(0.5) is None
    assert sweep.knee() in (4, 16)
    t = sweep.table()
    assert [row["batch"] for row in t] == [1, 4, 16] and t[2]["throughput_per_s"] > t[0]["throughput_per_s"]


def test_compare_interleaves_and_finds_the_faster():
    order = []
    res = bench.compare(lambda: (order.append("a"), time.sleep(0.002)), lambda: (order.append("b"), time.sleep(0.001)),
                        rounds=4, calls_per_round=3, warmup=1)
    assert 0.4 < res.ratio < 0.75 and res.speedup > 1.3 and len(res.ratios) == 4
    # rounds alternate AB, BA, AB, BA
    firsts = [order[i] for i in range(len(order)) if i == 0 or order[i] != order[i - 1]]
    assert firsts[:4] == ["a", "b", "a", "b"] or firsts[:3] == ["a", "b", "a"]
    assert "faster" in str(res)
    lo, hi = res.ratio_ci
    assert res.speedup_ci == (1 / hi, 1 / lo) and res.speedup_ci[0] <= res.speedup <= res.speedup_ci[1]


def test_compare_many_rotates_the_order_and_shares_the_baseline():
    order = []

    def f(name, s):
        return lambda: (order.append(name), time.sleep(s))

    res = bench.compare_many({"a": f("a", 0.003), "b": f("b", 0.0015), "c": (f("c", 0.003), ())},
                             rounds=3, calls_per_round=2, warmup=0)
    assert list(res) == ["b", "c"] and all(len(r.ratios) == 3 and r.label_a == "a" for r in res.values())
    assert res["b"].a is res["c"].a  # one baseline, timed in the same rounds
    assert res["b"].speedup > 1.3 and 0.6 < res["c"].speedup < 1.6
    groups = [order[i] for i in range(len(order)) if i == 0 or order[i] != order[i - 1]]
    assert groups == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # each round opened by the next one
    with pytest.raises(ValueError, match="at least two"):
        bench.compare_many({"a": f("a", 0)})


def test_between_pairs_two_sides_of_one_comparison_round_by_round():
    def ab(label, ratios):
        return bench.ABResult("base", label, ratios, None, None)

    slow, fast = ab("slow", [2.0, 1.0, 4.0]), ab("fast", [1.0, 0.5, 2.0])  # the machine drifts; fast is 2x per round
    res = bench.between(slow, fast)
    assert (res.label_a, res.label_b) == ("slow", "fast") and res.ratios == [0.5, 0.5, 0.5]
    assert res.speedup == 2.0 and res.speedup_ci == (2.0, 2.0)
    with pytest.raises(ValueError, match="share a baseline"):
        bench.between(slow, bench.ABResult("other", "x", [1.0, 1.0, 1.0], None, None))
    with pytest.raises(TypeError, match="ABResults"):
        bench.between(slow, 2.0)


def test_set_threads_restores():
    import torch

    before = torch.get_num_threads()
    with bench.set_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_sync_fn_waits_only_where_work_is_queued():
    import torch

    assert bench.sync_fn("cpu") is None and bench.sync_fn(torch.device("cpu")) is None
    with pytest.raises(ValueError, match="device='tpu'"):
        bench.sync_fn("tpu")
    if torch.cuda.is_available():
        a = torch.randn(2048, 2048, device="cuda")
        b = a @ a  # queued, not necessarily finished
        bench.sync_fn("cuda:0")()
        assert torch.cuda.current_stream().query() and b.shape == (2048, 2048)
    else:
        with pytest.raises(ValueError, match="no CUDA GPU"):
            bench.sync_fn("cuda")


def test_inference_fn_runs_the_module_without_autograd():
    import torch

    from mclab import bench

    lin = torch.nn.Linear(3, 2)
    out = bench.inference_fn(lin)(torch.ones(1, 3))
    assert torch.equal(out, lin(torch.ones(1, 3)).detach()) and not out.requires_grad and out.is_inference()


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_sync_counts_async_work():
    import torch

    a = torch.randn(4096, 4096, device="cuda")
    r = bench.measure(torch.mm, a, a, config=BenchConfig(device="cuda", min_iters=20, min_time_s=0))
    assert r.p50_ms > 0.1  # without sync an async launch would time at a few microseconds



def test_matmul_gflops_is_positive_and_validates():
    assert bench.matmul_gflops("float32", n=128, min_time_s=0.05) > 0
    with pytest.raises(ValueError, match="dtype"):
        bench.matmul_gflops("int8")
    with pytest.raises(ValueError, match="n=4"):
        bench.matmul_gflops(n=4)


def test_memory_bandwidth_is_positive_and_validates():
    assert bench.memory_bandwidth(mb=8, min_time_s=0.05) > 0
    with pytest.raises(ValueError, match="mb=0"):
        bench.memory_bandwidth(mb=0)

"""Benchmark of mclab.bench itself (not a timed test: it reports, it does not fail).

Measured side by side in one run:
1. the harness's own overhead per timed call, on a no-op (target <= 2 us);
2. mclab's median vs torch.utils.benchmark's median on the same 1-10 ms workload,
   interleaved round by round (target: within 5 %).

Run: `make bench` (writes build/bench/harness.json).
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch
import torch.utils.benchmark as tub

from mclab import bench


def noop() -> None:
    return None


def main(out: Path = Path("build/bench/harness.json"), rounds: int = 5) -> dict:
    # 1. overhead: a sample is the time between two clock reads around a call of a no-op
    r = bench.measure(noop, config=bench.BenchConfig(warmup=1000, min_iters=200_000, min_time_s=0.5, n_boot=100))
    overhead_us = r.p50_ms * 1e3
    loop_us = r.wall_s / r.n * 1e6  # whole loop per call: clocks, append, stop rule

    # 2. the same workload timed by both harnesses, alternating which goes first
    n = 768
    a, b = torch.randn(n, n), torch.randn(n, n)
    threads = torch.get_num_threads()
    timer = tub.Timer("torch.mm(a, b)", globals={"torch": torch, "a": a, "b": b}, num_threads=threads)
    ours, theirs = [], []
    for k in range(rounds):
        for which in (("ours", "theirs") if k % 2 == 0 else ("theirs", "ours")):
            if which == "ours":
                ours.append(bench.measure(torch.mm, a, b, config=bench.BenchConfig(
                    warmup=5, min_iters=50, min_time_s=1.0, n_boot=100)).p50_ms)
            else:
                theirs.append(timer.blocked_autorange(min_run_time=1.0).median * 1e3)
    ratio = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
    result = {
        "harness_overhead_us_per_call": overhead_us, "harness_loop_us_per_call": loop_us,
        "overhead_target_us": 2.0, "overhead_target_met": overhead_us <= 2.0,
        "workload": f"torch.mm {n}x{n} fp32, {threads} threads",
        "mclab_median_ms": statistics.median(ours), "torch_benchmark_median_ms": statistics.median(theirs),
        "ratio_mclab_over_torch_benchmark": ratio,
        "ratio_per_round": [o / t for o, t in zip(ours, theirs, strict=True)],
        "ratio_target": "within 5%", "ratio_target_met": abs(ratio - 1) <= 0.05, "rounds": rounds,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"harness overhead per timed call (no-op, median): {overhead_us:.3f} us "
          f"(whole loop {loop_us:.3f} us) — target <= 2 us: {'met' if result['overhead_target_met'] else 'MISSED'}")
    print(f"{result['workload']}: mclab median {result['mclab_median_ms']:.3f} ms, torch.utils.benchmark median "
          f"{result['torch_benchmark_median_ms']:.3f} ms, ratio {ratio:.4f} — target within 5%: "
          f"{'met' if result['ratio_target_met'] else 'MISSED'}")
    print(f"written to {out}")
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/bench/harness.json"))

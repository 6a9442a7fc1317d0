"""Benchmark of mclab.runtimes on this CPU (reports, never fails on speed).

One interleaved run (`mclab.runtimes.compare_runtimes`): ResNet-18 at 224x224, batch 1, the same thread count
for every runtime, every output compared with PyTorch eager FP32 on the same inputs. Targets:
1. ONNX Runtime FP32 >= 1.5x faster than PyTorch eager FP32;
2. OpenVINO FP32 (INFERENCE_PRECISION_HINT pinned to f32) >= 1.5x faster;
3. every FP32 runtime within 1e-4 max absolute error of PyTorch.
Reduced precisions (OpenVINO's plugin default and BF16, ONNX Runtime INT8, PyTorch BF16 autocast) are in the
same table with the precision each actually computed in and their own error.

Run: `.venv/bin/python benchmarks/runtimes.py [out.json] [--threads N] [--rounds R]`
(default build/bench/runtimes.json).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from _report import report  # benchmarks/_report.py, beside this script

from mclab import hw, runtimes

TARGETS = ("onnxruntime", "openvino", "openvino:default", "openvino:bf16", "onnxruntime:int8", "torch:bf16")


def main(out: Path = Path("build/bench/runtimes.json"), threads: int | None = None, rounds: int = 10,
         calls: int = 10) -> dict:
    start = time.perf_counter()
    cmp = runtimes.compare_runtimes("resnet18", runtimes.CompareConfig(
        targets=TARGETS, batch=1, threads=threads, input_shape=(3, 224, 224), rounds=rounds, calls_per_round=calls))
    ort, ov = cmp.row("onnxruntime"), cmp.row("openvino")
    fp32 = [r for r in cmp.rows if r.ok and r.precision == "fp32"]
    targets = {
        "onnxruntime_fp32_ge_1.5x_torch": bool(ort.ok and ort.speedup >= 1.5),
        "openvino_fp32_ge_1.5x_torch": bool(ov.ok and ov.precision == "fp32" and ov.speedup >= 1.5),
        "fp32_max_abs_err_le_1e-4": all(r.max_abs_err <= 1e-4 for r in fp32),
    }
    cpu = hw.cpu_info()
    result = {"comparison": cmp.as_dict(), "targets": targets, "all_met": all(targets.values()),
              "cpu": {"model": cpu.model, "features": cpu.features}, "wall_s": time.perf_counter() - start}
    print(cmp, end="\n\n")
    report(out, result, targets)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("build/bench/runtimes.json"))
    ap.add_argument("--threads", type=int, default=None, help="threads for every runtime (default: all usable cores)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    ap.add_argument("--calls", type=int, default=10, help="timed calls per runtime per round")
    a = ap.parse_args()
    main(a.out, a.threads, a.rounds, a.calls)

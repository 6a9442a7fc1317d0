"""INT8 on every CPU runtime, side by side (reports, never fails on speed).

Measured in one run, batch 1, the same threads for every runtime, all rows interleaved round by round
(mclab.bench.compare_many, the order rotating):
1. ResNet-18 at 224x224 (random weights; speed does not depend on them): PyTorch eager FP32; ONNX Runtime FP32,
   INT8 U8S8 (`runtimes.load(..., precision="int8")`: UINT8 activations x INT8 weights) and INT8 S8S8 (the same
   calibration with INT8 activations, for contrast); OpenVINO FP32, INT8 from the U8S8 QDQ file and INT8 from
   `precision="int8"` (NNCF); ExecuTorch FP32 / INT8 and torch-compile INT8 where available. A row that cannot be
   built stays in the table with its reason.
   Targets: INT8 over same-runtime FP32 >= 2.5x on ONNX Runtime, >= 3x on OpenVINO, >= 2.5x on ExecuTorch; every
   INT8 path (S8S8 aside) >= 3.5x faster than PyTorch eager FP32.
2. The trained reference model (mclab.models.reference) on the held-out digits: top-1 with Wilson 95 % CIs of FP32
   and INT8 on every runtime that builds both, each INT8 built as `runtimes.load(..., precision="int8")` builds it.
   Target: INT8 within 1 point of the same runtime's FP32.

Run: `.venv/bin/python benchmarks/int8.py [out.json] [--threads N] [--rounds R] [--calls C] [--fast]`
(default build/bench/int8.json, 2 threads, 10 rounds x 20 calls per row; --fast: 112x112, 3 rounds x 5 calls,
the fast reference model on the plain test split, and no ExecuTorch / torch-compile rows, whose lowering takes
minutes — about two minutes in all).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import report  # benchmarks/_report.py, beside this script

from mclab import bench, data, hw, models, runtimes, stats
from mclab.runtimes import onnxrt

# row label -> (runtime, precision, how it is built); "same" = the FP32 row of the same runtime
ROWS = {
    "torch fp32": ("torch", "fp32"),
    "onnxruntime fp32": ("onnxruntime", "fp32"),
    "onnxruntime int8 U8S8": ("onnxruntime", "int8"),
    "onnxruntime int8 S8S8": ("onnxruntime", "int8-s8s8"),
    "openvino fp32": ("openvino", "fp32"),
    "openvino int8 QDQ file": ("openvino", "int8-qdq"),
    "openvino int8 NNCF": ("openvino", "int8"),
    "executorch fp32": ("executorch", "fp32"),
    "executorch int8": ("executorch", "int8"),
    "torch-compile int8": ("torch-compile", "int8"),
}
SAME_RUNTIME_TARGET = {"onnxruntime int8 U8S8": 2.5, "openvino int8 QDQ file": 3.0, "openvino int8 NNCF": 3.0,
                       "executorch int8": 2.5}
EAGER_TARGET = 3.5
CONTRAST = {"onnxruntime int8 S8S8"}  # measured to explain, not a deployment path: no target
SLOW = {"executorch", "torch-compile"}  # lowering / compiling takes minutes: not in --fast


def _s8s8(model: Any, shape: tuple[int, ...], threads: int, tmp: str) -> runtimes.Runner:
    """The S8S8 contrast: onnxrt.build's recipe (8 random N(0, 1) batches, seed 0, min-max) with INT8 activations."""
    pre = onnxrt.prepare_onnx(model, os.path.join(tmp, "s8s8_fp32.onnx"), shape)
    rng = np.random.default_rng(0)
    cal = onnxrt.calibrate(pre, [rng.standard_normal((1, *shape), dtype=np.float32) for _ in range(8)])
    path = onnxrt.quantize_static(pre, os.path.join(tmp, "s8s8.onnx"), cal, activation_type="int8")
    return runtimes.load(path, "onnxruntime", threads=threads, input_shape=shape)


def _build(label: str, model: Any, shape: tuple[int, ...], threads: int, tmp: str, built: dict,
           fast: bool) -> tuple[Any, str]:
    """(runner, "ok") or (None, the reason it is skipped)."""
    rt, prec = ROWS[label]
    ok, why = runtimes.available(rt)
    if not ok:
        return None, f"skipped: {why}"
    if fast and rt in SLOW:
        return None, "skipped in --fast (lowering/compiling takes minutes)"
    try:
        if prec == "int8-s8s8":
            return _s8s8(model, shape, threads, tmp), "ok"
        if prec == "int8-qdq":
            src = built.get("onnxruntime int8 U8S8")
            if src is None:
                return None, "skipped: needs the ONNX Runtime U8S8 file"
            return runtimes.load(src.file, "openvino", threads=threads, input_shape=shape, precision="fp32"), "ok"
        if prec not in runtimes.precisions(rt):
            return None, f"skipped: {rt} does not take {prec} here (it takes {list(runtimes.precisions(rt))})"
        return runtimes.load(model, rt, threads=threads, input_shape=shape, precision=prec), "ok"
    except (ValueError, RuntimeError, ImportError, NotImplementedError) as e:
        return None, f"skipped: {str(e).strip().splitlines()[0][:160]}"


def _ratio(num: list[float], den: list[float]) -> tuple[float, tuple[float, float]]:
    """Median over rounds of num/den, with a bootstrap 95 % CI (both lists are per-round times vs one baseline)."""
    vals = [a / b for a, b in zip(num, den, strict=True)]
    return float(np.median(vals)), stats.bootstrap_ci(vals, 50, n_boot=500)


def _speed(size: int, threads: int, rounds: int, calls: int, fast: bool, tmp: str) -> dict:
    import torchvision

    torch.manual_seed(0)
    m = torchvision.models.resnet18().eval()
    shape = (3, size, size)
    built: dict[str, Any] = {}
    status: dict[str, str] = {}
    for label in ROWS:
        t0 = time.perf_counter()
        r, status[label] = _build(label, m, shape, threads, tmp, built, fast)
        if r is not None:
            built[label] = r
            status[label] = f"ok ({r.runtime}, Runner.precision {r.precision}, {r.threads} threads, built in " \
                            f"{time.perf_counter() - t0:.0f} s)"
        print(f"{label:24s} {status[label]}", flush=True)
    if "torch fp32" not in built:
        raise SystemExit("PyTorch eager FP32, the baseline, could not be built: " + status["torch fp32"])
    x = built["torch fp32"].example_input()
    ops = {k: runtimes.int8_op_counts(r) for k, r in built.items() if "int8" in k and r.runtime in
           ("onnxruntime", "openvino")}
    with bench.set_threads(threads):
        ab = bench.compare_many({k: r.run for k, r in built.items()}, (x,), rounds=rounds, calls_per_round=calls,
                                warmup=2)
    per_round = {"torch fp32": [1.0] * rounds, **{k: v.ratios for k, v in ab.items()}}  # time / eager time
    p50 = {"torch fp32": next(iter(ab.values())).a.p50_ms, **{k: v.b.p50_ms for k, v in ab.items()}}
    rows = {}
    for label in ROWS:
        row: dict[str, Any] = {"status": status[label]}
        if label in built:
            vs_eager, ci_eager = _ratio(per_round["torch fp32"], per_round[label])
            row.update(p50_ms=p50[label], speedup_vs_eager=vs_eager, speedup_vs_eager_ci95=list(ci_eager),
                       precision=built[label].precision, threads=built[label].threads, ops=ops.get(label))
            same = f"{ROWS[label][0]} fp32"
            if "int8" in label and same in built:
                s, ci = _ratio(per_round[same], per_round[label])
                row.update(speedup_vs_same_fp32=s, speedup_vs_same_fp32_ci95=list(ci))
        rows[label] = row
    print(f"\nResNet-18 {size}x{size}, batch 1, {threads} threads, {rounds} interleaved rounds x {calls} calls")
    print(f"{'row':24s}{'P50 ms':>9}{'vs eager':>10}{'95% CI':>14}{'vs same FP32':>14}{'95% CI':>14}")
    for label, row in rows.items():
        if "p50_ms" not in row:
            print(f"{label:24s}{row['status']}")
            continue
        same = (f"{row['speedup_vs_same_fp32']:.2f}x", "{:.2f}-{:.2f}".format(*row["speedup_vs_same_fp32_ci95"])) \
            if "speedup_vs_same_fp32" in row else ("", "")
        print(f"{label:24s}{row['p50_ms']:9.2f}{row['speedup_vs_eager']:9.2f}x"
              f"{'{:.2f}-{:.2f}'.format(*row['speedup_vs_eager_ci95']):>14}{same[0]:>14}{same[1]:>14}")
    s8 = ops.get("onnxruntime int8 S8S8")
    if s8:
        print(f"ONNX Runtime ran for S8S8: QLinearConv {s8.get('QLinearConv', 0)}, FP32 Conv "
              f"{s8.get('Conv', 0) + s8.get('FusedConv', 0)}, DequantizeLinear {s8.get('DequantizeLinear', 0)}")
    return {"input": list(shape), "threads": threads, "rounds": rounds, "calls_per_round": calls, "rows": rows}


def _accuracy(fast: bool, threads: int) -> dict:
    spec = models.reference_spec(fast)
    ref = models.reference(fast, progress=False)
    test = data.digits("test" if fast else "test_aug", size=spec.size)
    shape = (1, spec.size, spec.size)
    out: dict[str, Any] = {"spec": {"arch": spec.arch, "size": spec.size, "fast": fast}, "n": len(test),
                           "runtimes": {}}
    print(f"\nreference {spec.arch} {spec.size}px ({'fast' if fast else 'full'} recipe), {len(test)} test digits; "
          "INT8 as runtimes.load(..., precision='int8') builds it")
    for rt in ("onnxruntime", "openvino", "executorch", "torch-compile"):
        ok, why = runtimes.available(rt)
        if not ok or (fast and rt in SLOW):
            out["runtimes"][rt] = {"status": f"skipped: {why}" if not ok else "skipped in --fast"}
            print(f"{rt:14s} {out['runtimes'][rt]['status']}")
            continue
        res: dict[str, Any] = {}
        for prec in ("fp32", "int8"):
            try:
                r = runtimes.load(ref, rt, batch=1 if rt == "executorch" else 64, threads=threads,
                                  input_shape=shape, precision=prec)
                res[prec] = models.evaluate(runtimes.batched(r), test)
            except (ValueError, RuntimeError, ImportError, NotImplementedError) as e:
                res[prec] = f"skipped: {str(e).strip().splitlines()[0][:160]}"
        if all(isinstance(v, models.EvalResult) for v in res.values()):
            drop = 100 * (res["fp32"].accuracy - res["int8"].accuracy)
            out["runtimes"][rt] = {"status": "ok", "fp32": res["fp32"].as_dict(), "int8": res["int8"].as_dict(),
                                   "drop_points": drop}
            print(f"{rt:14s} FP32 {res['fp32']}; INT8 {res['int8']}; change {-drop:+.2f} points")
        else:
            out["runtimes"][rt] = {"status": "; ".join(f"{k}: {v}" for k, v in res.items()
                                                       if not isinstance(v, models.EvalResult))}
            print(f"{rt:14s} {out['runtimes'][rt]['status']}")
    return out


def main(out: Path = Path("build/bench/int8.json"), threads: int = 2, rounds: int = 10, calls: int = 20,
         fast: bool = False) -> dict:
    start = time.perf_counter()
    threads = min(threads, len(os.sched_getaffinity(0)))
    cpu = hw.cpu_info()
    with tempfile.TemporaryDirectory(prefix="mclab-bench-int8-") as tmp:
        speed = _speed(112 if fast else 224, threads, rounds, calls, fast, tmp)
    acc = _accuracy(fast, threads)
    rows = speed["rows"]
    targets: dict[str, bool] = {}
    for label, need in SAME_RUNTIME_TARGET.items():
        if "speedup_vs_same_fp32" in rows[label]:
            targets[f"{label} >= {need}x {ROWS[label][0]} fp32"] = rows[label]["speedup_vs_same_fp32"] >= need
    for label, row in rows.items():
        if "int8" in label and label not in CONTRAST and "speedup_vs_eager" in row:
            targets[f"{label} >= {EAGER_TARGET}x torch eager fp32"] = row["speedup_vs_eager"] >= EAGER_TARGET
    for rt, r in acc["runtimes"].items():
        if r["status"] == "ok":
            targets[f"{rt} int8 within 1 point of fp32"] = r["drop_points"] <= 1.0
    feats = [k for k in ("AVX2", "AVX-512", "AVX-512 VNNI", "AVX-VNNI", "AMX-INT8") if cpu.features.get(k)]
    result = {"machine": {"cpu": cpu.model, "features": cpu.features, "threads": threads},
              "speed": speed, "accuracy": acc, "targets": targets, "fast": fast,
              "wall_s": time.perf_counter() - start}
    print(f"\nCPU: {cpu.model}; INT8-relevant features: {', '.join(feats) or 'none'}; threads {threads}"
          + ("; --fast: a smoke run at 112x112, not the targets' conditions" if fast else ""))
    report(out, result, targets)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("build/bench/int8.json"))
    ap.add_argument("--threads", type=int, default=2, help="threads for every runtime (default 2)")
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    ap.add_argument("--calls", type=int, default=20, help="timed calls per row per round: a row's first calls after "
                    "another runtime ran are slower (cold caches, sleeping threads); more calls keep its median steady")
    ap.add_argument("--fast", action="store_true", help="112x112, 3 rounds, fast reference, no slow runtimes")
    a = ap.parse_args()
    rounds = 3 if a.fast and a.rounds == 10 else a.rounds
    calls = 5 if a.fast and a.calls == 20 else a.calls
    main(a.out, a.threads, rounds, calls, a.fast)

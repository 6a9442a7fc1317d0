"""Benchmark of mclab.quant on this CPU (reports, never fails on speed).

Measured in one run, batch 1, each pair interleaved round by round (mclab.bench.compare):
1. ResNet-18 at 224x224 (random weights; speed does not depend on them), static INT8 (QDQ from
   mclab.onnxrt.quantize_static: UINT8 activations, INT8 per-channel weights, calibrated on the two scikit-learn
   photographs) vs FP32 on the same runtime — ONNX Runtime and
   OpenVINO (target: INT8 >= 3x faster on one of them), and the faster INT8 vs PyTorch eager FP32 (target: >= 5x);
2. the trained reference model (mclab.models.reference): top-1 on the augmented test set of FP32, static INT8
   (ONNX Runtime, min-max calibration) and QAT -> INT8 (targets: static INT8 loses <= 1 point; if it loses more,
   QAT recovers at least half of the loss).

The targets assume AVX-512 VNNI or AMX (INT8 dot products in one instruction); the CPU's features are
recorded beside the ratios, and the OpenVINO pair is measured again with oneDNN's kernels capped at each older
instruction set the CPU has (ONEDNN_MAX_CPU_ISA, a fresh process each): without VNNI, INT8 gains far less.

Run: `.venv/bin/python benchmarks/quant.py [out.json] [--threads N] [--rounds R] [--fast]`
(default build/bench/quant.json; --fast uses the fast reference model and fewer rounds).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from _report import report  # benchmarks/_report.py, beside this script

from mclab import bench, data, hw, models, quant, runtimes
from mclab.runtimes import onnxrt
from mclab.runtimes import openvino as ovrt


def _resnet18_224(threads: int, rounds: int, tmp: str) -> dict:
    import torchvision

    torch.manual_seed(0)
    m = torchvision.models.resnet18().eval()
    pre = onnxrt.prepare_onnx(m, os.path.join(tmp, "resnet18.onnx"), (3, 224, 224))
    photos = [data.image_tensor(img, 224) for img in data.sample_images().values()]
    calib = [p for p in photos] + [torch.flip(p, dims=[-1]) for p in photos]  # 4 real images
    q = onnxrt.quantize_static(pre, os.path.join(tmp, "resnet18_int8.onnx"), onnxrt.calibrate(pre, calib))
    x = photos[0].numpy()
    out: dict = {"pairs": {}}
    runners = {}
    for rt in ("onnxruntime", "openvino"):
        runners[f"{rt} fp32"] = runtimes.load(pre, rt, threads=threads, input_shape=(3, 224, 224), precision="fp32")
        # the file is INT8 (QDQ); "fp32" = do not quantise it again
        runners[f"{rt} int8"] = runtimes.load(q, rt, threads=threads, input_shape=(3, 224, 224), precision="fp32")
    for name, r in runners.items():
        out.setdefault("int8_ops", {})[name] = runtimes.int8_op_counts(r) if "int8" in name else None
    for rt in ("onnxruntime", "openvino"):
        ab = bench.compare(runners[f"{rt} fp32"].run, runners[f"{rt} int8"].run, (x,), rounds=rounds, calls_per_round=5,
                           label_a=f"{rt} FP32", label_b=f"{rt} INT8")
        out["pairs"][f"{rt}_int8_vs_fp32"] = ab.as_dict()
        print(ab)
    best = max(("onnxruntime", "openvino"), key=lambda rt: out["pairs"][f"{rt}_int8_vs_fp32"]["speedup_b_vs_a"])
    xt = torch.from_numpy(x)

    def eager(t: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return m(t)

    with bench.set_threads(threads):
        ab = bench.compare(eager, runners[f"{best} int8"].run, (xt,), (x,), rounds=rounds, calls_per_round=5,
                           label_a="PyTorch eager FP32", label_b=f"{best} INT8")
    out["pairs"]["int8_vs_torch_eager_fp32"] = ab.as_dict()
    out["best_int8_runtime"] = best
    print(ab)
    # why the targets need VNNI: the same pair on OpenVINO, each in a fresh process with oneDNN's kernels capped
    out["openvino_isa_caps"] = {}
    for cap in ovrt.isa_caps(hw.cpu_info().features):
        r = ovrt.ab_under_isa(pre, q, (3, 224, 224), isa=cap, threads=threads, rounds=rounds, calls=5)
        keep = ("speedup_b_vs_a", "speedup_ci95", "a_p50_ms", "b_p50_ms", "kernels")
        out["openvino_isa_caps"][cap] = {k: r[k] for k in keep}
        lo, hi = r["speedup_ci95"]
        print(f"OpenVINO with kernels capped at {cap:16s}: INT8 {r['speedup_b_vs_a']:.2f}x faster than FP32 "
              f"(95% CI {lo:.2f}–{hi:.2f}; FP32 {r['a_p50_ms']:.2f} ms, INT8 {r['b_p50_ms']:.2f} ms; "
              f"INT8 kernels {', '.join(r['kernels']['b'])})")
    return out


def _reference(fast: bool, tmp: str) -> dict:
    spec = models.reference_spec(fast)
    model = models.reference(fast)
    test = data.digits("test_aug", size=spec.size)
    shape = (1, spec.size, spec.size)
    cal = data.calibration_batches(8, batch_size=32, size=spec.size)

    def int8_accuracy(m: torch.nn.Module, name: str) -> models.EvalResult:
        pre = onnxrt.prepare_onnx(m, os.path.join(tmp, f"{name}.onnx"), shape)
        q = onnxrt.quantize_static(pre, os.path.join(tmp, f"{name}_int8.onnx"), onnxrt.calibrate(pre, cal))
        return models.evaluate(runtimes.batched(runtimes.load(q, "onnxruntime", input_shape=shape, batch=128)), test)

    fp32 = models.evaluate(model, test)
    static = int8_accuracy(model, "ref")
    q = quant.qat(model, quant.QATConfig(epochs=1 if fast else 2), size=spec.size, cache=spec.key(), progress=True)
    qat8 = int8_accuracy(q.float, "qat")
    loss_static = 100 * (fp32.accuracy - static.accuracy)
    loss_qat = 100 * (fp32.accuracy - qat8.accuracy)
    print(f"reference ({spec.arch}, {spec.size}px, {'fast' if fast else 'full'}): FP32 {fp32}; "
          f"static INT8 {static}; QAT INT8 {qat8}")
    return {"spec": {"arch": spec.arch, "size": spec.size, "fast": fast, "key": spec.key()},
            "fp32": fp32.as_dict(), "static_int8": static.as_dict(), "qat_int8": qat8.as_dict(),
            "static_loss_points": loss_static, "qat_loss_points": loss_qat}


def main(out: Path = Path("build/bench/quant.json"), threads: int | None = None, rounds: int = 20,
         fast: bool = False) -> dict:
    start = time.perf_counter()
    threads = threads or torch.get_num_threads()
    cpu = hw.cpu_info()
    with tempfile.TemporaryDirectory(prefix="mclab-bench-quant-") as tmp:
        speed = _resnet18_224(threads, rounds, tmp)
        acc = _reference(fast, tmp)
    p = speed["pairs"]
    same = max(p["onnxruntime_int8_vs_fp32"]["speedup_b_vs_a"], p["openvino_int8_vs_fp32"]["speedup_b_vs_a"])
    loss, loss_qat = acc["static_loss_points"], acc["qat_loss_points"]
    targets = {
        "int8_ge_3x_fp32_same_runtime": same >= 3,
        "int8_ge_5x_torch_eager_fp32": p["int8_vs_torch_eager_fp32"]["speedup_b_vs_a"] >= 5,
        "static_int8_loss_le_1_point": loss <= 1.0,
        "qat_recovers_half_of_larger_loss": loss <= 1.0 or loss_qat <= loss / 2,
    }
    result = {"machine": {"cpu": cpu.model, "features": cpu.features, "threads": threads},
              "resnet18_224": speed, "reference": acc, "targets": targets, "wall_s": time.perf_counter() - start}
    feats = [k for k in ("AVX2", "AVX-512", "AVX-512 VNNI", "AVX-VNNI", "AMX-INT8") if cpu.features.get(k)]
    print(f"\nCPU: {cpu.model}; INT8-relevant features: {', '.join(feats) or 'none'}; threads {threads}")
    report(out, result, targets)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("build/bench/quant.json"))
    ap.add_argument("--threads", type=int, default=None, help="threads for every runtime (default: torch's setting)")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds per pair")
    ap.add_argument("--fast", action="store_true", help="the fast reference model and 6 rounds")
    a = ap.parse_args()
    main(a.out, a.threads, 6 if a.fast and a.rounds == 20 else a.rounds, a.fast)

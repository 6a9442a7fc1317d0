"""Benchmark of the compression techniques on this CPU (reports, never fails on speed).

One run, batch 1, each pair interleaved round by round (mclab.bench.compare). Sections (``SECTIONS``; run one with
``--only NAME``) each return their measurements and their targets; the pruning section is:

1. ResNet-18 at 224x224 (torchvision, random weights: speed does not depend on their values) — dense vs the
   inner convolution of every BasicBlock with 50 % of its output channels removed (mclab.prune.prune_channels)
   vs 50 % unstructured global magnitude sparsity (mclab.prune.prune_, masks folded in). Targets: structured
   >= 1.5x lower latency than dense; unstructured no real speed-up (< 1.15x).
2. The trained reference model (mclab.models.reference, 32x32 digits): the same two prunings, latency ratios
   as above, and top-1 on the augmented test set (1,440 images) of dense, unstructured 50 % (no fine-tuning) and
   structured 50 % after BatchNorm recalibration and fine-tuning. Target: the fine-tuned structured model within
   2 points of dense.

Run: `.venv/bin/python benchmarks/compress.py [out.json] [--threads N] [--rounds R] [--epochs E] [--fast]
[--only pruning]` (default build/bench/compress.json; --fast uses the fast reference model, 6 rounds and one
fine-tuning epoch).
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any, Callable

import torch
from _report import report  # benchmarks/_report.py, beside this script

from mclab import bench, data, flops, hw, models, prune

AMOUNT = 0.5  # the source material's "pruning 50 %"


def _variants(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """dense, structured (50 % of the inner block channels removed), unstructured (50 % global zeros)."""
    unstr = copy.deepcopy(model)
    prune.prune_(unstr, prune.PruneConfig(AMOUNT, scope="global", permanent=True))
    structured = prune.prune_channels(model, prune.ChannelConfig(AMOUNT))
    return {"dense": model, "structured": structured, "unstructured": unstr}


def _speed(variants: dict[str, torch.nn.Module], x: torch.Tensor, rounds: int, calls: int) -> dict[str, Any]:
    out: dict[str, Any] = {"macs": {k: flops.count(m, x).macs for k, m in variants.items()},
                           "params": {k: prune.sparsity(m).nonzero_params for k, m in variants.items()},
                           "nonzero_macs": {k: prune.nonzero_macs(m, x) for k, m in variants.items()}}
    for k in ("structured", "unstructured"):
        ab = bench.compare(bench.inference_fn(variants["dense"]), bench.inference_fn(variants[k]), (x,), rounds=rounds,
                           calls_per_round=calls, label_a="dense", label_b=f"{k} {AMOUNT:.0%}")
        out[f"{k}_vs_dense"] = ab.as_dict()
        print(ab)
    return out


def _pruning(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, bool]]:
    import torchvision

    torch.manual_seed(0)
    big = torchvision.models.resnet18().eval()
    x224 = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    print("ResNet-18 224x224, batch 1:")
    r224 = _speed(_variants(big), x224, args.rounds, 3)

    spec = models.reference_spec(args.fast)
    ref = models.reference(args.fast)
    test = data.digits("test_aug", size=spec.size)
    v = _variants(ref)
    print(f"reference ({spec.arch}, {spec.size}px, {'fast' if args.fast else 'full'}), batch 1:")
    r32 = _speed(v, test.x[:1], args.rounds, 10)
    acc = {"dense": models.evaluate(v["dense"], test), "unstructured": models.evaluate(v["unstructured"], test),
           "structured (removed)": models.evaluate(v["structured"], test)}
    prune.recalibrate_bn_(v["structured"], data.digits("train", size=spec.size), augment=spec.train.augment)
    acc["structured (BatchNorm recalibrated)"] = models.evaluate(v["structured"], test)
    ft = models.train(v["structured"], models.TrainConfig(epochs=args.epochs, lr=1e-3, seed=1))
    acc["structured (fine-tuned)"] = models.evaluate(v["structured"], test)
    for k, r in acc.items():
        print(f"  {k:38s} {r}")
    drop = 100 * (acc["dense"].accuracy - acc["structured (fine-tuned)"].accuracy)
    s224, u224 = r224["structured_vs_dense"]["speedup_b_vs_a"], r224["unstructured_vs_dense"]["speedup_b_vs_a"]
    s32, u32 = r32["structured_vs_dense"]["speedup_b_vs_a"], r32["unstructured_vs_dense"]["speedup_b_vs_a"]
    targets = {
        "structured_ge_1.5x_faster_resnet18_224": s224 >= 1.5,
        "unstructured_no_real_speedup_resnet18_224": u224 < 1.15,
        "structured_ge_1.5x_faster_reference_32px": s32 >= 1.5,
        "unstructured_no_real_speedup_reference_32px": u32 < 1.15,
        "structured_finetuned_within_2_points": drop <= 2.0,
    }
    result = {"amount": AMOUNT, "resnet18_224": r224,
              "reference": {"spec": {"arch": spec.arch, "size": spec.size, "fast": args.fast, "key": spec.key()},
                            **r32, "accuracy": {k: r.as_dict() for k, r in acc.items()},
                            "finetune": {"epochs": args.epochs, "seconds": ft.seconds}, "structured_drop_points": drop}}
    print(f"speed-up vs dense: structured {s224:.2f}x / unstructured {u224:.2f}x at 224px; "
          f"structured {s32:.2f}x / unstructured {u32:.2f}x on the 32px reference; "
          f"fine-tuned structured drop {drop:.2f} points")
    return result, targets


# name -> section; each returns (measurements, targets).
SECTIONS: dict[str, Callable[[argparse.Namespace], tuple[dict[str, Any], dict[str, bool]]]] = {
    "pruning": _pruning,
}


def main(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    threads = args.threads or torch.get_num_threads()
    cpu = hw.cpu_info()
    result: dict[str, Any] = {"machine": {"cpu": cpu.model, "features": cpu.features, "threads": threads}}
    targets: dict[str, bool] = {}
    with bench.set_threads(threads):
        for name in args.only or list(SECTIONS):
            print(f"== {name}")
            result[name], got = SECTIONS[name](args)
            targets.update({f"{name}.{k}": v for k, v in got.items()})
    result.update(targets=targets, wall_s=time.perf_counter() - start)
    print(f"\nCPU: {cpu.model}; threads {threads}")
    report(args.out, result, targets)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("build/bench/compress.json"))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's setting)")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds per pair")
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs of the structured model")
    ap.add_argument("--fast", action="store_true", help="the fast reference model, 6 rounds, 1 fine-tuning epoch")
    ap.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run only these sections")
    a = ap.parse_args()
    if a.fast:
        a.rounds = 6 if a.rounds == 20 else a.rounds
        a.epochs = 1 if a.epochs == 3 else a.epochs
    main(a)

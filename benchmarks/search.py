"""Benchmark of mclab.nas's evolution against random search (reports, never fails on accuracy).

Notebook 19 compares the two on five seeds; this script asks the same question on more, so that the notebook's
setting can be checked on seeds it was not chosen on. Both methods search the trained supernet (notebook 19's,
from the kit's cache) under one latency budget (torch lookup table, ``--budget`` of the way from the smallest to the
largest predicted latency) with the same number of distinct evaluations, on the search set (``val_aug``: seeded
distortions of the validation digits; ``val``: the 359 clean ones). The best sub-network of each run is then
evaluated on held-out images (``test_aug``), which no search saw. Printed per seed and per seed group (mean, sd).
Target: evolution's mean best accuracy on the search set at least random search's, in every seed group.

Run: `.venv/bin/python benchmarks/search.py [out.json] [--seeds 0-2,3-7] [--evaluations 60] [--budget 0.5]
[--set val_aug] [--copies 4] [--epochs 10] [--threads 1]` (default build/bench/search.json).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _report import report  # benchmarks/_report.py, beside this script

from mclab import data, hw, nas


def _groups(text: str) -> list[list[int]]:
    """"0-2,3-7" -> [[0, 1, 2], [3, 4, 5, 6, 7]]; "5" -> [[5]]."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.append(list(range(int(lo), int(hi or lo) + 1)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("build/bench/search.json"))
    ap.add_argument("--seeds", default="0-2,3-7", help="seed groups, e.g. 0-2,3-7 (each summarised on its own)")
    ap.add_argument("--evaluations", type=int, default=60)
    ap.add_argument("--budget", type=float, default=0.5)
    ap.add_argument("--set", default="val_aug", choices=("val_aug", "val"))
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=10, help="supernet training epochs (notebook 19's EPOCHS)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not 0 < args.budget <= 1:
        raise SystemExit(f"--budget={args.budget} must lie in (0, 1]")
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    space = nas.SupernetConfig()
    net, _ = nas.cached_supernet(space, nas.SupernetTrainConfig(epochs=args.epochs), progress=True)
    train = data.digits("train", size=space.size)
    kw = {"copies": args.copies} if args.set == "val_aug" else {}
    ev = nas.Evaluator(net, data.digits(args.set, size=space.size, **kw), train)
    held = nas.Evaluator(net, data.digits("test_aug", size=space.size, copies=4), train)
    lut = nas.build_lut(space, "torch", threads=args.threads)
    small, big = lut.predict(nas.smallest(space)), lut.predict(nas.largest(space))
    budget_ms = small + args.budget * (big - small)
    print(f"{args.set} ({len(ev.data)} images), {args.evaluations} evaluations, budget {budget_ms:.3f} ms "
          f"({args.budget:.2f} of {small:.3f}..{big:.3f} ms on torch)")
    cpu = hw.cpu_info()
    result: dict = {"machine": {"cpu": cpu.model, "features": cpu.features, "threads": args.threads},
                    "set": args.set, "n_images": len(ev.data), "evaluations": args.evaluations,
                    "budget": args.budget, "budget_ms": budget_ms, "groups": []}
    targets = {}
    for seeds in _groups(args.seeds):
        cmp = nas.compare_methods(ev, lut, budget_ms, evaluations=args.evaluations, seeds=seeds)
        heldout = {m: np.array([held(r.best) for r in rs]) for m, rs in cmp.runs.items()}
        frame = cmp.to_frame().assign(**{f"{m} held-out": 100 * h for m, h in heldout.items()})
        print(frame.round(2).to_string())
        name = f"seeds {seeds[0]}-{seeds[-1]}"
        for m in cmp.runs:
            sd = heldout[m].std(ddof=1) if len(seeds) > 1 else 0.0
            print(f"{name} {m:10s} {args.set} mean {100 * cmp.mean(m):.2f} % (sd {100 * cmp.sd(m):.2f}); "
                  f"held-out test_aug mean {100 * heldout[m].mean():.2f} % (sd {100 * sd:.2f})")
        d = cmp.diff()
        d_sd = 100 * d.std(ddof=1) if len(d) > 1 else 0.0
        print(f"{name}: evolution - random {100 * d.mean():+.2f} points (sd {d_sd:.2f}), evolution at least as "
              f"accurate in {int((d >= 0).sum())} of {len(d)} seeds\n")
        result["groups"].append({"seeds": seeds, **cmp.as_dict(),
                                 "heldout": {m: h.tolist() for m, h in heldout.items()}})
        targets[f"{name}: evolution >= random on {args.set}"] = bool(d.mean() >= 0)
    result["targets"] = targets
    result["wall_s"] = time.perf_counter() - t0
    report(args.out, result, targets)


if __name__ == "__main__":
    main()

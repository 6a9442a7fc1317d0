"""Audit of the kit's runtime defaults on this CPU (reports, never fails on speed).

One row per runtime and precision it offers (`mclab.runtimes.audit_defaults`): ResNet-18 at 224x224, batch 1,
2 threads; the kit's default runner against one runner per value of each setting the plug-in declares in its
`KNOBS` (and the two best changes together), all timed interleaved, every output checked against the default's.
Target: every default runs at >= 90 % of the speed of the best setting that keeps the answer (met), else MISSED
with the faster setting named; a faster setting that changes the outputs is named in the reason column.
torch.compile's `mode="max-autotune-no-cudagraphs"` compiles for minutes per precision on a small CPU: left out
unless `--autotune`.

Run: `.venv/bin/python benchmarks/defaults.py [out.json] [--threads N] [--rounds R] [--autotune]`
(default build/bench/defaults.json).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from _report import report  # benchmarks/_report.py, beside this script

from mclab import hw, runtimes
from mclab.runtimes import audit


def main(out: Path = Path("build/bench/defaults.json"), threads: int = 2, rounds: int = 5, calls: int = 5,
         autotune: bool = False) -> dict:
    start = time.perf_counter()
    knobs = {}
    if not autotune:  # the one setting whose compile takes minutes: swept only when asked
        tc = audit.knobs_of("torch-compile")
        knobs["torch-compile"] = {k: v for k, v in tc.items() if k != "mode"}
    result_audit = runtimes.audit_defaults("resnet18", None, threads=threads, input_shape=(3, 224, 224), batch=1,
                                           rounds=rounds, calls_per_round=calls, knobs=knobs)
    targets = {f"{r.runtime}:{r.precision}_default_ge_90pct_of_best": bool(r.met)
               for r in result_audit.rows if r.ok}
    cpu = hw.cpu_info()
    result = {"audit": result_audit.as_dict(), "targets": targets, "all_met": all(targets.values()),
              "cpu": {"model": cpu.model, "features": cpu.features}, "wall_s": time.perf_counter() - start}
    print(result_audit, end="\n\n")
    report(out, result, targets)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("build/bench/defaults.json"))
    ap.add_argument("--threads", type=int, default=2, help="threads for every runtime")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--calls", type=int, default=5, help="timed calls per runner per round")
    ap.add_argument("--autotune", action="store_true", help="also sweep torch.compile's max-autotune mode (slow)")
    a = ap.parse_args()
    main(a.out, a.threads, a.rounds, a.calls, a.autotune)

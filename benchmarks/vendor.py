"""Benchmark of the kit's OpenVINO timing against OpenVINO's own benchmark_app (reports, never fails on speed).

ResNet-18 (random weights) exported once to ONNX at 1x3x224x224 with a static batch, so that both tools read the
same file without a reshape. Then, interleaved round by round (which tool goes first alternates):
- ``benchmark_app -m FILE -hint none -nstreams 1 -nireq 1 -nthreads 2 -infer_precision f32 -api sync -ip f32 -t T``,
  its "Median" latency line parsed. ``-ip f32``: without it benchmark_app makes an image input u8 and adds a
  u8 -> f32 conversion to the model (its log says ``input : u8``), a quarter of the input bytes — not the workload the
  kit runs, which feeds float32 arrays;
- ``mclab bench FILE --runtime openvino --threads 2 --min-time T --json``, its p50.
The kit runs through its CLI in a fresh process, as benchmark_app does, and not in this process: each tool then
reads the file, compiles and warms up on its own, neither inherits the other's caches, thread pools or allocator
state, and what is measured is the command a learner types. Both time one synchronous request at a time for T s.
Both compiled models' properties are read back (benchmark_app prints them; the kit's are ``Runner.info``) and the
ones the kit reports are set side by side in the JSON (``properties``), so a difference in settings shows.

Target: median over rounds of benchmark_app median / kit p50 >= 0.95.

TensorFlow Lite's benchmark tool (``benchmark_model``) is not compared: the tensorflow pip wheel does not ship it
(searched site-packages and the venv's bin/ for ``*benchmark*``: only Python benchmark helpers, no binary, no entry
point).

Run: `.venv/bin/python benchmarks/vendor.py [out.json] [--rounds 3] [--seconds 5]` (default build/bench/vendor.json).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _report import report  # benchmarks/_report.py, beside this script

from mclab.runtimes.export import ExportConfig, export_onnx

THREADS = 2
TFLITE = ("TFLite benchmark_model: not reachable here — the tensorflow wheel ships no benchmark_model binary or "
          "entry point (searched site-packages and the venv's bin/)")
# benchmark_app's name for a property -> the kit's Runner.info key (mclab.runtimes.openvino.compiled_facts)
_SAME = {"PERFORMANCE_HINT": "performance_hint", "NUM_STREAMS": "streams", "INFERENCE_NUM_THREADS": "inference_threads",
         "INFERENCE_PRECISION_HINT": "inference_precision", "ENABLE_CPU_PINNING": "cpu_pinning",
         "SCHEDULING_CORE_TYPE": "scheduling_core_type", "ENABLE_HYPER_THREADING": "hyper_threading",
         "EXECUTION_MODE_HINT": "execution_mode", "OPTIMAL_NUMBER_OF_INFER_REQUESTS": "optimal_infer_requests"}


def benchmark_app_path() -> str:
    """benchmark_app beside this interpreter (the venv's bin/), else on PATH."""
    here = Path(sys.executable).with_name("benchmark_app")
    found = str(here) if here.is_file() else shutil.which("benchmark_app")
    if not found:
        raise SystemExit("benchmark_app not found beside the interpreter or on PATH (`pip install openvino`)")
    return found


def run_benchmark_app(path: str, seconds: int) -> dict:
    """One benchmark_app run: median/average/min/max latency (ms), iterations, input precision, the compiled model's
    properties as it prints them."""
    cmd = [benchmark_app_path(), "-m", path, "-d", "CPU", "-hint", "none", "-nstreams", "1", "-nireq", "1",
           "-nthreads", str(THREADS), "-infer_precision", "f32", "-api", "sync", "-ip", "f32", "-t", str(seconds)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    text = r.stdout + r.stderr
    if r.returncode != 0:
        raise RuntimeError(f"benchmark_app failed (exit {r.returncode}): {text.strip().splitlines()[-1:]}")
    out = {}
    for key in ("Median", "Average", "Min", "Max"):
        m = re.search(rf"^\[ INFO \]\s+{key}:\s+([\d.]+) ms", text, re.M)
        if m is None:
            raise RuntimeError(f"benchmark_app printed no {key} latency line")
        out[f"{key.lower()}_ms"] = float(m.group(1))
    out["count"] = int(re.search(r"Count:\s+(\d+) iterations", text).group(1))
    # the compiled model's input after benchmark_app's preprocessing ("Configuring input of the model")
    step6 = text.split("[Step 6/11]")[1].split("[Step 7/11]")[0]
    out["input"] = re.search(r"input \(node: \w+\) : (\w+)", step6).group(1)
    step8 = text.split("[Step 8/11]")[1].split("[Step 9/11]")[0]
    out["properties"] = dict(re.findall(r"^\[ INFO \]\s{3}([A-Z_]+): (.*)$", step8, re.M))
    out["command"] = " ".join(cmd)
    return out


def run_kit(path: str, seconds: int) -> dict:
    """One ``mclab bench`` run in a fresh process: p50 (ms), calls timed, the runner's info."""
    cmd = [sys.executable, "-m", "mclab", "bench", path, "--runtime", "openvino", "--threads", str(THREADS),
           "--min-time", str(seconds), "--json"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"mclab bench failed (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
    d = json.loads(r.stdout)
    return {"p50_ms": d["p50_ms"], "n": d.get("n"), "precision": d["precision"], "info": d["info"],
            "command": " ".join(cmd[1:])}


def _norm(v: object) -> str:
    """A property as text both tools agree on: 'True', '2', 'LATENCY', 'fp32'."""
    s = str(v).split(".")[-1].strip("<>' ")
    return {"Type: 'float32": "fp32", "float32": "fp32", "f32": "fp32"}.get(s, s)


def main(out: Path = Path("build/bench/vendor.json"), rounds: int = 3, seconds: int = 5) -> dict:
    start = time.perf_counter()
    path = os.fspath(out.parent / "vendor" / "resnet18.onnx")
    export_onnx("resnet18", path, ExportConfig(input_shape=(3, 224, 224), dynamic_batch=False, verify=False))
    rows = []
    for k in range(rounds):
        order = ("vendor", "kit") if k % 2 == 0 else ("kit", "vendor")
        got = {}
        for who in order:
            got[who] = run_benchmark_app(path, seconds) if who == "vendor" else run_kit(path, seconds)
        rows.append({"round": k + 1, "first": order[0], "benchmark_app_median_ms": got["vendor"]["median_ms"],
                     "kit_p50_ms": got["kit"]["p50_ms"],
                     "ratio": got["vendor"]["median_ms"] / got["kit"]["p50_ms"], "benchmark_app": got["vendor"],
                     "kit": got["kit"]})
    ratio = statistics.median(r["ratio"] for r in rows)
    ba, kit = rows[-1]["benchmark_app"]["properties"], rows[-1]["kit"]["info"]
    props = {name: {"benchmark_app": ba.get(name), "kit": kit.get(key),
                    "same": _norm(ba.get(name)) == _norm(kit.get(key))} for name, key in _SAME.items()}
    targets = {"kit_p50_within_5pct_of_benchmark_app": ratio >= 0.95}
    result = {"model": "resnet18 (random weights), 1x3x224x224 FP32, ONNX", "file": path, "threads": THREADS,
              "seconds_per_run": seconds, "rounds": rows, "median_ratio_benchmark_app_over_kit": ratio,
              "properties": props, "tflite": TFLITE, "targets": targets, "wall_s": time.perf_counter() - start}
    print(f"{'round':>5s} {'first':>6s} {'benchmark_app median ms':>24s} {'kit p50 ms':>11s} {'ratio':>7s}")
    for r in rows:
        print(f"{r['round']:5d} {r['first']:>6s} {r['benchmark_app_median_ms']:24.2f} {r['kit_p50_ms']:11.2f} "
              f"{r['ratio']:7.3f}")
    print(f"median ratio (benchmark_app median / kit p50): {ratio:.3f}  (target >= 0.95)")
    differ = [n for n, p in props.items() if not p["same"]]
    print(f"compiled-model properties compared: {len(props)}, differing: {differ or 'none'}")
    print(TFLITE)
    report(out, result, targets)
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("build/bench/vendor.json"))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each: one run of each tool)")
    ap.add_argument("--seconds", type=int, default=5, help="seconds each tool times per run")
    a = ap.parse_args()
    main(a.out, a.rounds, a.seconds)

"""Where the time goes: a per-operator profile of a :class:`~mclab.runtimes.Runner`, read from each runtime's own
profiler, in one shape (:class:`Profile`) so that runtimes can be set side by side (:func:`table`).

    torch, torch-compile   torch.profiler: self CPU time per aten op (or compiled graph call)
    onnxruntime            SessionOptions.enable_profiling: kernel time per node of the optimised graph
                           (:func:`mclab.runtimes.onnxrt.profile_nodes`)
    openvino               the CPU plugin's performance counters (``PERF_COUNT``, ``get_profiling_info``):
                           real time per runtime layer, with the kernel that ran it (``exec_type``)
    executorch             no per-operator profiler in the pip runtime (it needs an ETDump build): one row for the
                           whole program

:func:`profile` dispatches on ``runner.runtime`` through :data:`PROFILERS`. Introduced in notebook 09.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .base import Runner

__all__ = ["OpShare", "Profile", "PROFILERS", "profile", "table"]


@dataclass
class OpShare:
    """One operator kind in a profile: summed over its nodes, per run."""

    op: str
    calls: float          # nodes of this kind executed per run
    ms: float             # time per run
    share: float          # of the profile's total operator time
    detail: str = ""      # what ran it: input dtypes (ONNX Runtime), the kernel (OpenVINO)


@dataclass
class Profile:
    """A runner's operator time, as its runtime's profiler reports it, averaged over ``runs`` calls."""

    runtime: str
    model: str
    precision: str
    threads: int | None
    runs: int
    profiler: str                                # which profiler the numbers come from
    total_ms: float                              # summed operator time per run (not wall time: see wall_ms)
    wall_ms: float                               # wall time per profiled call, profiler overhead included
    ops: list[OpShare] = field(default_factory=list)  # largest first
    note: str = ""

    def top(self, n: int = 5) -> list[OpShare]:
        return self.ops[:n]

    def records(self, n: int | None = None) -> list[dict[str, Any]]:
        """One dict per operator kind (largest first), with the runtime and precision: a DataFrame's rows."""
        return [{"runtime": self.runtime, "precision": self.precision, **asdict(o)} for o in self.ops[:n]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shares(times: dict[str, float], calls: dict[str, float], details: dict[str, set[str]]) -> tuple[float,
                                                                                                     list[OpShare]]:
    total = sum(times.values())
    ops = [OpShare(k, calls[k], v, v / total if total else 0.0, ", ".join(sorted(details.get(k, ()))))
           for k, v in sorted(times.items(), key=lambda kv: -kv[1])]
    return total, ops


def _timed(fn: Callable[[], Any], runs: int) -> float:
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - t0) * 1e3 / runs


def _torch(runner: Runner, x: Any, runs: int, warmup: int) -> Profile:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for _ in range(warmup):
        runner.run(x)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = _timed(lambda: runner.run(x), runs)
    times: dict[str, float] = {}
    calls: dict[str, float] = {}
    for evt in prof.key_averages():
        if evt.self_cpu_time_total > 0:
            times[evt.key] = evt.self_cpu_time_total / 1e3 / runs
            calls[evt.key] = evt.count / runs
    total, ops = _shares(times, calls, {})
    return Profile(runner.runtime, runner.model, runner.precision, runner.threads, runs,
                   "torch.profiler (self CPU time per op)", total, wall, ops)


def _onnxruntime(runner: Runner, x: Any, runs: int, warmup: int) -> Profile:
    from .onnxrt import profile_nodes

    t0 = time.perf_counter()
    nodes = profile_nodes(runner, x, runs=runs, warmup=warmup)
    wall = (time.perf_counter() - t0) * 1e3 / (runs + warmup)  # includes the session build: an upper bound
    times: dict[str, float] = {}
    calls: dict[str, float] = {}
    details: dict[str, set[str]] = {}
    for n in nodes:
        times[n["op"]] = times.get(n["op"], 0.0) + n["us"] / 1e3
        calls[n["op"]] = calls.get(n["op"], 0) + 1
        if n["input_types"]:
            details.setdefault(n["op"], set()).add(n["input_types"][0])
    total, ops = _shares(times, calls, details)
    return Profile(runner.runtime, runner.model, runner.precision, runner.threads, runs,
                   "ONNX Runtime enable_profiling (kernel time per node)", total, wall, ops,
                   note="detail: the dtype of each node's first input; wall_ms includes building the session")


def _openvino(runner: Runner, x: Any, runs: int, warmup: int) -> Profile:
    import openvino as ov

    from .openvino import _read, compile_model

    if not runner.file:
        raise ValueError("this OpenVINO runner has no model file to compile again with PERF_COUNT")
    m = _read(runner.file, runner.input_shape[0], tuple(runner.input_shape[1:]))
    prec = runner.precision if runner.precision in ("bf16", "fp16") else "fp32"  # INT8 comes from the file
    compiled = compile_model(m, precision=prec, threads=runner.threads, extra={"PERF_COUNT": True})
    req = compiled.create_infer_request()
    for _ in range(warmup):
        req.infer({0: x})
    times: dict[str, float] = {}
    calls: dict[str, float] = {}
    details: dict[str, set[str]] = {}
    executed = ov.ProfilingInfo.Status.EXECUTED
    t0 = time.perf_counter()
    for _ in range(runs):
        req.infer({0: x})
        for pi in req.profiling_info:  # the counters of the last call only: summed call by call
            if pi.status != executed:
                continue
            times[pi.node_type] = times.get(pi.node_type, 0.0) + pi.real_time.total_seconds() * 1e3 / runs
            calls[pi.node_type] = calls.get(pi.node_type, 0) + 1 / runs
            details.setdefault(pi.node_type, set()).add(pi.exec_type)
    wall = (time.perf_counter() - t0) * 1e3 / runs
    total, ops = _shares(times, calls, details)
    return Profile(runner.runtime, runner.model, runner.precision, runner.threads, runs,
                   "OpenVINO PERF_COUNT (real time per runtime layer)", total, wall, ops,
                   note="detail: the kernel the CPU plugin chose (exec_type); the model is compiled again with "
                        "PERF_COUNT on")


def _whole_program(runner: Runner, x: Any, runs: int, warmup: int) -> Profile:
    for _ in range(warmup):
        runner.run(x)
    wall = _timed(lambda: runner.run(x), runs)
    return Profile(runner.runtime, runner.model, runner.precision, runner.threads, runs, "wall clock only", wall,
                   wall, [OpShare("(whole program)", 1.0, wall, 1.0)],
                   note=f"{runner.runtime}: no per-operator profiler here (ExecuTorch needs a runtime built with "
                        "ETDump)")


# runtime name (mclab.runtimes.RUNTIMES) -> its profiler; a runtime not listed is a ValueError
PROFILERS: dict[str, Callable[[Runner, Any, int, int], Profile]] = {
    "torch": _torch,
    "torch-compile": _torch,
    "onnxruntime": _onnxruntime,
    "openvino": _openvino,
    "executorch": _whole_program,
}


def profile(runner: Runner, x: Any = None, *, runs: int = 20, warmup: int = 3) -> Profile:
    """Profile ``runner`` on ``x`` (default: its example input) over ``runs`` calls after ``warmup`` with its
    runtime's own profiler (:data:`PROFILERS`); operator kinds largest first. The profilers measure different
    things (self CPU time, kernel time, layer time): compare shares within a runtime, and totals across runtimes
    only roughly."""
    if not isinstance(runner, Runner):
        raise TypeError(f"runner must be a mclab.runtimes.Runner, got {type(runner).__name__}")
    if runner.runtime not in PROFILERS:
        raise ValueError(f"runner.runtime={runner.runtime!r} has no profiler here; profiled: {sorted(PROFILERS)}")
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise ValueError(f"runs={runs!r} must be an int >= 1")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r} must be an int >= 0")
    x = runner.example_input() if x is None else x
    runner.run(x)  # checks the input's shape and dtype before any profiler starts
    return PROFILERS[runner.runtime](runner, x, runs, warmup)


def table(profiles: list[Profile], top: int = 3) -> list[dict[str, Any]]:
    """One row per profile: runtime, precision, profiler, operator time per run and the ``top`` operator kinds as
    ``"QLinearConv 94 %"`` — a DataFrame that shows where each runtime spends its time."""
    rows = []
    for p in profiles:
        row: dict[str, Any] = {"runtime": p.runtime, "precision": p.precision, "profiler": p.profiler,
                               "op time ms": p.total_ms}
        for i in range(top):
            row[f"#{i + 1}"] = f"{p.ops[i].op} {100 * p.ops[i].share:.0f} %" if i < len(p.ops) else ""
        rows.append(row)
    return rows

"""Where the time goes: a per-operator profile of a :class:`~mclab.runtimes.Runner`, read from each runtime's own
profiler, in one shape (:class:`Profile`) so that runtimes can be set side by side (:func:`table`).

Each runtime's plug-in provides its ``profile(runner, x, runs, warmup)``; :func:`profile` asks the registry:

    torch, torch-compile   torch.profiler: self CPU time per aten op (or compiled graph call): :func:`torch_ops`
    onnxruntime            SessionOptions.enable_profiling: kernel time per node of the optimised graph
                           (:func:`mclab.runtimes.onnxrt.profile_nodes`)
    openvino               the CPU plugin's performance counters (``PERF_COUNT``, ``get_profiling_info``):
                           real time per runtime layer, with the kernel that ran it (``exec_type``)
    any other              no per-operator profiler (ExecuTorch's pip runtime needs an ETDump build): one row for
                           the whole program, wall clock (:func:`whole_program`)

Introduced in notebook 09.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .base import Runner, plugin

__all__ = [
    # one shape for every runtime's profile
    "OpShare", "Profile", "shares",
    # the profilers plug-ins share, and the one entry point
    "torch_ops", "whole_program", "profile", "table",
]


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


def shares(times: dict[str, float], calls: dict[str, float], details: dict[str, set[str]]) -> tuple[float,
                                                                                                    list[OpShare]]:
    """Operator kinds as :class:`OpShare` rows, largest first, from time (ms per run), calls per run and details per
    kind; returns (the summed time, the rows)."""
    total = sum(times.values())
    ops = [OpShare(k, calls[k], v, v / total if total else 0.0, ", ".join(sorted(details.get(k, ()))))
           for k, v in sorted(times.items(), key=lambda kv: -kv[1])]
    return total, ops


def _timed(fn: Callable[[], Any], runs: int) -> float:
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - t0) * 1e3 / runs


def torch_ops(runner: Runner, x: Any, runs: int, warmup: int) -> Profile:
    """torch.profiler over ``runs`` calls: self CPU time per aten op (the torch and torch-compile plug-ins' profile)."""
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
    total, ops = shares(times, calls, {})
    return Profile(runner.runtime, runner.model, runner.precision, runner.threads, runs,
                   "torch.profiler (self CPU time per op)", total, wall, ops)


def whole_program(runner: Runner, x: Any, runs: int, warmup: int) -> Profile:
    """Wall clock over ``runs`` calls as one row: the profile of a runtime whose plug-in has no profiler."""
    for _ in range(warmup):
        runner.run(x)
    wall = _timed(lambda: runner.run(x), runs)
    return Profile(runner.runtime, runner.model, runner.precision, runner.threads, runs, "wall clock only", wall,
                   wall, [OpShare("(whole program)", 1.0, wall, 1.0)],
                   note=f"{runner.runtime}: no per-operator profiler in its plug-in (ExecuTorch's needs a runtime "
                        "built with ETDump)")


def profile(runner: Runner, x: Any = None, *, runs: int = 20, warmup: int = 3) -> Profile:
    """Profile ``runner`` on ``x`` (default: its example input) over ``runs`` calls after ``warmup`` with its
    runtime's own profiler (its plug-in's ``profile``; :func:`whole_program` where it has none); operator kinds
    largest first. The profilers measure different
    things (self CPU time, kernel time, layer time): compare shares within a runtime, and totals across runtimes
    only roughly."""
    if not isinstance(runner, Runner):
        raise TypeError(f"runner must be a mclab.runtimes.Runner, got {type(runner).__name__}")
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise ValueError(f"runs={runs!r} must be an int >= 1")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r} must be an int >= 0")
    x = runner.example_input() if x is None else x
    runner.run(x)  # checks the input's shape and dtype before any profiler starts
    return getattr(plugin(runner.runtime), "profile", whole_program)(runner, x, runs, warmup)


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

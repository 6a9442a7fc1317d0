"""Choosing and shipping: constraints, one profile per variant, validation, the optimisation loop, Pareto.

The source material's advice is a loop: state the constraints, measure the baseline, then quantise →
prune → distil (→ pick a runtime) until the constraints hold, and validate before deploying. Here that
loop runs for real on the kit's reference classifier; every number in a :class:`Report` is measured on
this machine or labelled as an estimate. Introduced in notebook 16.

Layers: a :class:`mclab.scenarios.Scenario` (a preset of :data:`mclab.scenarios.SCENARIOS` or a custom one)
states the limits in the metric keys a :class:`Report` measures → :func:`measure_variant` (one variant, every
metric family) → :func:`validate` (the scenario's check of the report's metrics: pass/fail per constraint with its
margin) → :func:`optimise` (the loop, returning its trail) and :func:`pareto` (the non-dominated variants).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import cache, scenarios

if TYPE_CHECKING:
    import pandas as pd
    import torch

__all__ = [
    # variants and their profiles
    "Variant", "ProfileConfig", "Report", "measure_variant", "variant_accuracy", "from_module",
    # validation against a scenario's constraints
    "validate",
    # the loop and the frontier
    "OptimiseConfig", "Step", "Trail", "optimise", "STEPS", "pareto",
    # the speed-up a technique buys (its row of mclab.techniques.strategy_matrix)
    "speedup",
]

# ----------------------------------------------------------------------------- variants and profiles


@dataclass
class Variant:
    """One deployable candidate: the float module it came from, the file a runtime runs, and how it was made."""

    name: str
    module: "torch.nn.Module"            # the float model (further steps start from it)
    path: str                            # the deployed file: an .onnx that `runtime` runs
    runtime: str = "onnxruntime"
    precision: str = "fp32"              # what the file holds: fp32, fp16 or int8 (static QDQ)
    steps: tuple[str, ...] = ()          # what was applied, in order
    request: str = "fp32"                # the precision asked of the runtime (OpenVINO may be asked for fp16/bf16)

    @property
    def size_bytes(self) -> int:
        return os.path.getsize(self.path)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "runtime": self.runtime, "precision": self.precision,
                "steps": list(self.steps), "size_bytes": self.size_bytes,
                "params": sum(p.numel() for p in self.module.parameters())}


@dataclass(frozen=True)
class ProfileConfig:
    """How hard :func:`measure_variant` measures. ``fast`` shortens every window (CI)."""

    threads: int = 2                     # intra-op threads of every runtime
    batch: int = 32                      # batch of the throughput measurement
    latency_min_time_s: float = 1.0      # timed window of the batch-1 latency run
    throughput_s: float = 1.0
    energy_s: float = 1.0                # timed window of the energy run, >= 0.5 (+ 0.5 s idle baseline)
    memory: bool = True                  # measure peak memory in a fresh process (about 2 s per variant)
    eval_split: str = "test"
    price_per_hour: float | str = "g4dn.xlarge (T4)"  # cost assumes instances of this price serve at our throughput
    rate_per_s: float = 10.0             # the load: power = energy per inference x rate (optimise uses the scenario's)

    def __post_init__(self) -> None:
        for name in ("threads", "batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} must be an int >= 1")
        for name in ("latency_min_time_s", "throughput_s", "rate_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be > 0")
        if not self.energy_s >= 0.5:
            raise ValueError(f"energy_s={self.energy_s!r} must be >= 0.5: five chunks of >= 0.1 s, "
                             "or the counter is noise")


@dataclass
class Report:
    """Every metric family for one variant. ``kinds`` says which figures are measured and which estimated."""

    variant: str
    runtime: str
    precision: str                       # what the runtime reports it computes in
    accuracy: float
    ci95: tuple[float, float]
    n_test: int
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    throughput_qps: float
    model_size_mb: float
    params: int
    peak_memory_mb: float | None
    energy_mj: float
    power_w: float                       # energy per inference x rate_per_s
    rate_per_s: float
    cost_usd_per_day: float
    accuracy_drop_pts: float = 0.0       # vs the baseline given to measure_variant (0 for the baseline itself)
    kinds: dict[str, str] = field(default_factory=dict)
    steps: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float | None]:
        """The measured figures under the metric keys of :data:`mclab.scenarios.METRICS` (what
        :meth:`mclab.scenarios.Scenario.check` reads); ``peak_memory_mb`` is None when memory was not measured."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name in scenarios.METRICS}
        return {**out, "params_m": self.params / 1e6}


def _runner(v: Variant, batch: int, threads: int, shape: tuple[int, ...]):
    from . import runtimes

    return runtimes.load(v.path, v.runtime, batch=batch, threads=threads, input_shape=shape, precision=v.request)


_MEMORY_SCRIPT = r"""
import json, sys
import numpy as np
import torch  # noqa: F401  (the kit's processes always have it; it is not the model's memory)
path, runtime, shape, threads = sys.argv[1], sys.argv[2], tuple(json.loads(sys.argv[3])), int(sys.argv[4])
__import__({"onnxruntime": "onnxruntime", "openvino": "openvino"}[runtime])
from mclab import runtimes

def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":"))

x = np.zeros((1, *shape), np.float32)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the high-water mark (VmHWM) to the current RSS: imports' transient peaks do not count
before = status("VmRSS")
r = runtimes.load(path, runtime, batch=1, threads=threads, input_shape=shape, precision="fp32")
for _ in range(3):
    r.run(x)
print(json.dumps({"before_kb": before, "after_kb": status("VmHWM")}))
"""


def _peak_memory_mb(v: Variant, shape: tuple[int, ...], threads: int) -> float:
    """Peak resident memory (MB) that loading and running ``v`` adds to a fresh process that already has
    torch and the runtime imported: the model's weights, the runtime's copies and its activation arena."""
    r = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, v.path, v.runtime, json.dumps(list(shape)), str(threads)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"the memory probe for {v.name} failed: {r.stderr.strip().splitlines()[-1:]}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    return max(0.0, (d["after_kb"] - d["before_kb"]) / 1024)


def variant_accuracy(variant: Variant, *, split: str = "test", threads: int = 2, shape: tuple[int, ...] = (1, 32, 32),
                     data: Any = None) -> Any:
    """Top-1 accuracy of ``variant``'s file, run by its runtime, on a digits split (or ``data``, a dataset of
    (x, y) pairs): a :class:`mclab.models.EvalResult` (accuracy, 95 % CI, n)."""
    from .data import digits
    from .models import evaluate as evaluate_model
    from .runtimes import batched

    data = digits(split, size=shape[-1]) if data is None else data
    return evaluate_model(batched(_runner(variant, 128, threads, shape)), data)


def from_module(name: str, module: "torch.nn.Module", work_dir: str | os.PathLike, *,
                shape: tuple[int, ...] = (1, 32, 32), steps: tuple[str, ...] = ()) -> Variant:
    """An FP32 :class:`Variant` of ``module``: exported to ``work_dir/<name>.onnx`` (BatchNorm folded, checked
    against PyTorch) for ONNX Runtime."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)
    return Variant(name, module.eval(), _export(module, os.path.join(os.fspath(work_dir), f"{safe}.onnx"), shape),
                   steps=steps)


def measure_variant(variant: Variant, config: ProfileConfig | None = None, *, baseline: Report | None = None,
                    shape: tuple[int, ...] = (1, 32, 32)) -> Report:
    """Measure ``variant`` on this machine: accuracy with a 95 % CI on the digits' test split, batch-1 latency
    percentiles (ms), throughput at ``config.batch`` (items/s), file size (MB), peak memory (MB, a fresh
    process), energy per inference (mJ; measured with RAPL/NVML, otherwise an estimate labelled as such),
    power at the load, and cost per day. ``baseline`` sets the accuracy drop. Returns a :class:`Report`."""
    import numpy as np

    from . import bench, energy
    from .data import digits

    cfg = config or ProfileConfig()
    if not isinstance(variant, Variant):
        raise TypeError(f"variant must be a mclab.deploy.Variant, got {type(variant).__name__}")
    if not os.path.isfile(variant.path):
        raise ValueError(f"variant {variant.name!r}: file {variant.path!r} does not exist")
    test = digits(cfg.eval_split, size=shape[-1])
    acc = variant_accuracy(variant, threads=cfg.threads, shape=shape, data=test)
    one = _runner(variant, 1, cfg.threads, shape)
    x1 = test.x[:1].numpy()
    lat = bench.measure(one.run, x1, config=bench.BenchConfig(warmup=5, min_iters=50, min_time_s=cfg.latency_min_time_s,
                                                               max_time_s=30, n_boot=200))
    thr_runner = _runner(variant, cfg.batch, cfg.threads, shape)
    xb = np.ascontiguousarray(test.x[:cfg.batch].numpy())
    if len(xb) < cfg.batch:
        xb = np.resize(xb, (cfg.batch, *xb.shape[1:]))
    thr = bench.throughput(thr_runner.run, xb, batch=cfg.batch, duration_s=cfg.throughput_s)
    en = energy.measure_energy(one.run, x1, min_window_s=cfg.energy_s, idle_s=0.5, chunks=5)
    cost = energy.cloud_cost(thr.items_per_s, cfg.price_per_hour, qps=cfg.rate_per_s)
    mem = _peak_memory_mb(variant, shape, cfg.threads) if cfg.memory else None
    pct = lat.summary()
    kinds = {"accuracy": "measured", "latency": "measured", "throughput": "measured", "size": "measured",
             "memory": "measured" if cfg.memory else "not measured", "energy": en.kind,
             "power": f"{en.kind} (energy per inference x {cfg.rate_per_s:g}/s, above idle)",
             "cost": f"estimated (instances at {cost.price_per_hour:g} USD/h serving at this machine's throughput)"}
    drop = 0.0 if baseline is None else 100 * (baseline.accuracy - acc.accuracy)
    precision = variant.precision if variant.precision == "int8" else one.precision
    return Report(variant=variant.name, runtime=variant.runtime, precision=precision,
                  accuracy=acc.accuracy, ci95=tuple(acc.ci95), n_test=acc.n,
                  latency_p50_ms=pct["p50_ms"], latency_p90_ms=pct["p90_ms"], latency_p99_ms=pct["p99_ms"],
                  throughput_qps=thr.items_per_s, model_size_mb=variant.size_bytes / 1e6,
                  params=sum(p.numel() for p in variant.module.parameters()), peak_memory_mb=mem,
                  energy_mj=en.millijoules, power_w=en.joules_per_inference * cfg.rate_per_s, rate_per_s=cfg.rate_per_s,
                  cost_usd_per_day=float(cost.usd_per_day_for_qps), accuracy_drop_pts=drop, kinds=kinds,
                  steps=variant.steps)


# ----------------------------------------------------------------------------- validation


def _scenario(scenario: scenarios.Scenario | str) -> scenarios.Scenario:
    if isinstance(scenario, str):
        return scenarios.scenario(scenario)
    if not isinstance(scenario, scenarios.Scenario):
        raise TypeError(f"scenario must be a mclab.scenarios.Scenario or a preset key {sorted(scenarios.SCENARIOS)}, "
                        f"got {type(scenario).__name__}")
    return scenario


def validate(report: Report, scenario: scenarios.Scenario | str) -> scenarios.Validation:
    """Check ``report`` against every constraint of ``scenario`` (a :class:`mclab.scenarios.Scenario` or a preset
    key): pass/fail, margin (positive = inside) and whether the limit is hard, by
    :meth:`mclab.scenarios.Scenario.check` on :meth:`Report.metrics`. Returns a :class:`mclab.scenarios.Validation`."""
    if not isinstance(report, Report):
        raise TypeError(f"report must be a mclab.deploy.Report, got {type(report).__name__}")
    return _scenario(scenario).check(report.metrics(), variant=report.variant)


# ----------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class OptimiseConfig:
    """The pipeline's knobs. ``fast`` trains briefly (CI)."""

    steps: tuple[str, ...] = ("quantise", "prune", "distil", "runtime")
    prune_amount: float = 0.5            # share of channels removed from every safe convolution
    finetune_epochs: int = 3             # after pruning
    student_width: int = 16              # mclab.models.small_cnn width for distillation
    distil_epochs: int = 12
    temperature: float = 4.0
    alpha: float = 0.7
    calib_batches: int = 4               # of 32 images, for static INT8
    profile: ProfileConfig = ProfileConfig()
    work_dir: str | None = None          # where artifacts go; None: a temporary folder removed at exit

    def __post_init__(self) -> None:
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown or len(set(self.steps)) != len(self.steps):
            raise ValueError(f"steps={self.steps} must be distinct names from {list(STEPS)}")
        if not 0 < self.prune_amount < 1:
            raise ValueError(f"prune_amount={self.prune_amount} must be in (0, 1)")
        for name in ("finetune_epochs", "student_width", "distil_epochs", "calib_batches"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} must be an int >= 1")


@dataclass
class Step:
    """One step of the trail: what was done, the variant it produced, its profile and validation."""

    step: str
    variant: Variant
    report: Report
    validation: scenarios.Validation

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "variant": self.variant.as_dict(), "report": self.report.as_dict(),
                "validation": self.validation.as_dict()}


@dataclass
class Trail:
    """The loop's history. ``final`` is the first step that passed, or the last one tried."""

    scenario: scenarios.Scenario
    steps: list[Step]

    @property
    def passed(self) -> bool:
        return self.final.validation.passed

    @property
    def final(self) -> Step:
        return next((s for s in self.steps if s.validation.passed), self.steps[-1])

    def summary(self) -> str:
        head = " -> ".join(f"{s.step} ({'PASS' if s.validation.passed else 'fail'})" for s in self.steps)
        return f"{self.scenario.key}: {head}\n{self.final.validation.summary()}"

    def table(self) -> "pd.DataFrame":
        import pandas as pd

        rows = []
        for s in self.steps:
            r = s.report
            rows.append({"step": s.step, "variant": r.variant, "accuracy": r.accuracy,
                         "drop [pts]": r.accuracy_drop_pts, "P99 [ms]": r.latency_p99_ms,
                         "throughput [/s]": r.throughput_qps, "size [MB]": r.model_size_mb,
                         "memory [MB]": r.peak_memory_mb, "power [W]": r.power_w, "passes": s.validation.passed})
        return pd.DataFrame(rows).set_index("step")

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario.as_dict(), "passed": self.passed, "final": self.final.step,
                "summary": self.summary(), "steps": [s.as_dict() for s in self.steps]}


# Each step: (the current variant, the baseline variant, config, context) -> the next variant
StepFn = Callable[[Variant, Variant, OptimiseConfig, dict[str, Any]], Variant]


def _export(module: "torch.nn.Module", path: str, shape: tuple[int, ...]) -> str:
    from .runtimes.onnxrt import prepare_onnx

    return prepare_onnx(module, path, shape)


def _int8(module: "torch.nn.Module", name: str, cfg: OptimiseConfig, ctx: dict[str, Any]) -> str:
    from .data import calibration_batches
    from .runtimes.onnxrt import calibrate, quantize_static

    shape = ctx["shape"]
    fp32 = _export(module, os.path.join(ctx["dir"], f"{name}.onnx"), shape)
    cal = calibrate(fp32, calibration_batches(cfg.calib_batches, batch_size=32, size=shape[-1], seed=1))
    return quantize_static(fp32, os.path.join(ctx["dir"], f"{name}-int8.onnx"), cal)


def _step_quantise(cur: Variant, base: Variant, cfg: OptimiseConfig, ctx: dict[str, Any]) -> Variant:
    return Variant("INT8", cur.module, _int8(cur.module, "quantised", cfg, ctx), cur.runtime, "int8",
                   (*cur.steps, "quantise"))


def _step_prune(cur: Variant, base: Variant, cfg: OptimiseConfig, ctx: dict[str, Any]) -> Variant:
    from . import prune
    from .models import TrainConfig, train

    tcfg = TrainConfig(epochs=cfg.finetune_epochs, lr=1e-3, size=ctx["shape"][-1], progress=ctx["progress"])
    pruned = _cached_fit(ctx, "pruned", prune.prune_channels(cur.module, prune.ChannelConfig(amount=cfg.prune_amount)),
                         tcfg.key(), lambda m: train(m, tcfg))
    name = f"pruned {int(100 * cfg.prune_amount)}% ch"
    return Variant(name + " + INT8", pruned, _int8(pruned, "pruned", cfg, ctx), cur.runtime, "int8",
                   (*cur.steps, "prune"))


def _step_distil(cur: Variant, base: Variant, cfg: OptimiseConfig, ctx: dict[str, Any]) -> Variant:
    from . import distill
    from .models import TrainConfig, small_cnn

    dcfg = distill.DistillConfig(temperature=cfg.temperature, alpha=cfg.alpha,
                                 train=TrainConfig(epochs=cfg.distil_epochs, lr=1e-2, size=ctx["shape"][-1],
                                                   progress=ctx["progress"]))
    student = _cached_fit(ctx, f"student-w{cfg.student_width}", small_cnn(cfg.student_width), dcfg.as_dict(),
                          lambda m: distill.distill_(m, base.module, dcfg))
    return Variant(f"distilled small CNN w{cfg.student_width} + INT8", student, _int8(student, "student", cfg, ctx),
                   cur.runtime, "int8", (*cur.steps, "distil"))


def _step_runtime(cur: Variant, base: Variant, cfg: OptimiseConfig, ctx: dict[str, Any]) -> Variant:
    """Run the current file on every CPU runtime that takes it; keep the one with the lower median latency
    (an interleaved A/B at batch 1)."""
    from . import bench, runtimes

    x = ctx["x1"]
    best, best_ms = cur.runtime, None
    for rt in ("onnxruntime", "openvino"):
        if not runtimes.available(rt)[0]:
            continue
        r = _runner(replace(cur, runtime=rt), 1, cfg.profile.threads, ctx["shape"])
        ms = bench.measure(r.run, x, config=bench.BenchConfig(warmup=5, min_iters=50, min_time_s=0.5,
                                                              n_boot=100)).summary()["p50_ms"]
        if best_ms is None or ms < best_ms:
            best, best_ms = rt, ms
    return replace(cur, name=f"{cur.name} on {best}", runtime=best, steps=(*cur.steps, f"runtime:{best}"))


STEPS: dict[str, StepFn] = {"quantise": _step_quantise, "prune": _step_prune, "distil": _step_distil,
                            "runtime": _step_runtime}


def _cached_fit(ctx: dict[str, Any], tag: str, model: "torch.nn.Module", recipe: dict[str, Any],
               fit: Callable[["torch.nn.Module"], Any]) -> "torch.nn.Module":
    """``fit(model)`` (training in place) unless a checkpoint of the same recipe (architecture shapes, parent
    weights, ``recipe``) is cached in :func:`mclab.cache.cache_dir`; returns the trained model in eval mode."""
    import torch

    shapes = str({k: tuple(v.shape) for k, v in model.state_dict().items()})
    key = cache.key(tag=tag, parent=ctx["parent_key"], shapes=shapes, recipe=recipe)

    def build() -> dict[str, Any]:
        fit(model)
        return model.state_dict()

    entry = cache.cached(cache.cache_dir() / f"deploy-{tag}-{key}.pt", build, save=torch.save,
                         load=lambda p: torch.load(p, map_location="cpu", weights_only=True))
    if entry.from_cache:
        model.load_state_dict(entry.value)
    return model.eval()


def _smallest_possible_mb(cfg: OptimiseConfig) -> float:
    """Size of the smallest file the steps can make: the INT8 student's weights (1 byte each) plus scales,
    estimated from its parameter count without training it."""
    from .models import small_cnn

    if "distil" not in cfg.steps:
        return 0.0
    return sum(p.numel() for p in small_cnn(cfg.student_width).parameters()) / 1e6


def optimise(model: "torch.nn.Module", scenario: scenarios.Scenario | str, config: OptimiseConfig | None = None, *,
             baseline: tuple[Variant, Report] | None = None, progress: bool = False,
             reports: dict[tuple[str, ...], tuple[Variant, Report]] | None = None) -> Trail:
    """Run the source material's loop on ``model`` (a trained digits classifier): profile the FP32 baseline,
    then apply ``config.steps`` in order (quantise → prune → distil → runtime), re-profiling and validating
    after each, and stop at the first variant that meets every hard constraint of ``scenario`` (a
    :class:`mclab.scenarios.Scenario` or a preset key; its ``rate_per_s`` is the load profiles assume).
    ``reports`` caches variants by their step history so several scenarios share the work. Raises ``ValueError``
    for constraints that no variant can meet by construction. Returns the :class:`Trail`."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    scenario = _scenario(scenario)
    cfg = config or OptimiseConfig()
    pcfg = replace(cfg.profile, rate_per_s=scenario.rate_per_s)
    cache = reports if reports is not None else {}
    from .runtimes.export import process_folder

    # without work_dir: a sub-folder per call in one folder removed at exit (a shared ``reports`` points into it)
    work = cfg.work_dir or tempfile.mkdtemp(prefix="optimise-", dir=process_folder("mclab-deploy-"))
    Path(work).mkdir(parents=True, exist_ok=True)
    shape = (1, 32, 32)
    from .data import digits

    ctx: dict[str, Any] = {"dir": work, "shape": shape, "x1": digits("test", size=32).x[:1].numpy(),
                           "progress": progress, "parent_key": _weights_key(model)}

    def measured(v: Variant, base_report: Report | None) -> tuple[Variant, Report]:
        key = v.steps
        if key not in cache or cache[key][1].rate_per_s != pcfg.rate_per_s:
            cache[key] = (v, measure_variant(v, pcfg, baseline=base_report, shape=shape))
        return cache[key]

    if baseline is None:
        base_v, base_r = measured(from_module("FP32 baseline", model, work, shape=shape), None)
    else:
        base_v, base_r = baseline
    _contradictions(scenario, base_r, cfg)
    trail = [Step("baseline", base_v, base_r, validate(base_r, scenario))]
    cur = base_v
    for name in cfg.steps:
        if trail[-1].validation.passed:
            break
        key = (*cur.steps, name)
        nxt = cache[key][0] if key in cache else STEPS[name](cur, base_v, cfg, ctx)
        nxt, rep = measured(nxt, base_r)
        trail.append(Step(name, nxt, rep, validate(rep, scenario)))
        cur = nxt
    return Trail(scenario, trail)


def _weights_key(model: "torch.nn.Module") -> str:
    return cache.digest(b for k, v in sorted(model.state_dict().items())
                        for b in (k.encode(), v.detach().cpu().contiguous().numpy().tobytes()))


def _contradictions(scenario: scenarios.Scenario, base: Report, cfg: OptimiseConfig) -> None:
    """Raise when no step can meet the limits: every step trades accuracy for cost, so a minimum accuracy above
    the baseline's CI cannot be reached; a size below the smallest file the steps make cannot either."""
    problems = []
    acc, size = scenario.limit("accuracy"), scenario.limit("model_size_mb")
    if acc is not None and not acc.soft and acc.op in (">", ">=") and acc.value > base.ci95[1]:
        problems.append(f"{acc} is above the baseline's accuracy {base.accuracy:.4f} "
                        f"(95% CI up to {base.ci95[1]:.4f}), and no step raises accuracy")
    floor = _smallest_possible_mb(cfg)
    if size is not None and not size.soft and size.op in ("<", "<=") and size.value < 0.5 * floor:
        problems.append(f"{size} is far below the smallest variant the steps "
                        f"{list(cfg.steps)} can make (about {floor:.3g} MB: the INT8 student)")
    if problems:
        raise ValueError(f"contradictory constraints {scenario.key!r}: " + "; ".join(problems))


# ----------------------------------------------------------------------------- the frontier


def pareto(reports: Sequence[Report], objectives: dict[str, str]) -> list[int]:
    """Indices of the reports no other report beats on every objective ({metric: "min" or "max"}, two or
    three metrics of :class:`Report`): each one is the best at some trade-off."""
    if not 2 <= len(objectives) <= 3:
        raise ValueError(f"objectives must name 2 or 3 metrics, got {list(objectives)}")
    names = {f.name for f in fields(Report)}
    for k, d in objectives.items():
        if k not in names:
            raise ValueError(f"objective {k!r} is not a Report metric; choose from {sorted(names)}")
        if d not in ("min", "max"):
            raise ValueError(f"objective {k}={d!r}; allowed: 'min' or 'max'")
    pts = [tuple((1 if d == "min" else -1) * getattr(r, k) for k, d in objectives.items()) for r in reports]
    return [i for i, p in enumerate(pts)
            if not any(all(a <= b for a, b in zip(q, p, strict=True)) and any(a < b for a, b in zip(q, p, strict=True))
                       for q in pts)]


# ----------------------------------------------------------------------------- speed-up of one variant over another


def speedup(ref: Variant, var: Variant, *, threads: int = 2, rounds: int = 20, shape: tuple[int, ...] = (1, 32, 32)
            ) -> tuple[float, tuple[float, float]]:
    """How many times faster ``var`` runs than ``ref`` at batch 1: an interleaved A/B (:func:`mclab.bench.compare`),
    so a drifting machine moves both alike. Returns (ratio of medians, its 95 % CI)."""
    import numpy as np

    from . import bench

    x = np.random.default_rng(0).standard_normal((1, *shape), dtype=np.float32)
    a, b = _runner(ref, 1, threads, shape), _runner(var, 1, threads, shape)
    ab = bench.compare(a.run, b.run, (x,), rounds=rounds, calls_per_round=10, label_a=ref.name, label_b=var.name)
    return ab.speedup, ab.speedup_ci

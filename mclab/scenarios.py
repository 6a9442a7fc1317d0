"""The source material's six metric families and five deployment scenarios, as data, and the one constraint check.

One vocabulary: every metric has one key, with its unit in the name (:data:`METRICS`), and those keys are the
ones :class:`mclab.deploy.Report` measures (``latency_p99_ms``, ``peak_memory_mb``, ``accuracy_drop_pts``, ...).
The source's "latency" is held to the P99 at batch 1, its strictest reading. Its FPS is the throughput of a
video stream (frames are the queries), so it is ``throughput_qps`` here: the real-time video preset's
"FPS > 15" reads ``throughput_qps > 15`` beside ``latency_p99_ms < 66`` (one frame within 1/15 s), with a note
saying so.

One constraint type: a :class:`Constraint` is a limit on one metric (hard, or soft: reported but never
blocking); a :class:`Scenario` holds the constraints of a deployment and the load it serves; and
:meth:`Scenario.check` turns measurements (a dict keyed by metric) into a :class:`Validation`: pass/fail, the
margin (positive = inside the limit) and whether each limit is hard. Notebook 00 checks a dict of quick
measurements with it; notebook 16's :func:`mclab.deploy.validate` checks a profile's metrics with it.

Every number in the presets is a *claim* from the source material (seeds 000/001), not a measurement; notebooks
set what they measure beside it. Introduced in notebook 00.
"""
from __future__ import annotations

import math
import operator
from dataclasses import KW_ONLY, asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    # data types
    "Metric", "MetricFamily", "Constraint", "Scenario",
    # results
    "Check", "Validation",
    # data
    "METRICS", "METRIC_FAMILIES", "SCENARIOS",
    # verbs
    "scenario",
]


@dataclass(frozen=True)
class Metric:
    """One measurable quantity; ``key`` carries its unit so numbers are never ambiguous."""

    key: str              # e.g. "latency_p99_ms"
    name: str
    zh: str               # the source material's term
    unit: str
    better: str           # "lower" or "higher"
    typical_target: str   # the source material's rule of thumb, as text
    unmeasured: str = ""  # why the kit cannot measure it ("" when it can): a limit on it is listed, never checked


@dataclass(frozen=True)
class MetricFamily:
    key: str
    name: str
    zh: str
    question: str         # what the family answers
    metrics: tuple[str, ...]
    notebooks: tuple[str, ...]  # where the kit measures it


def _metrics(*ms: Metric) -> dict[str, Metric]:
    return {m.key: m for m in ms}


# Typical targets from the source material's cheat sheet (seed 001, "six metric families").
METRICS: dict[str, Metric] = _metrics(
    Metric("latency_p99_ms", "P99 latency at batch 1", "延迟", "ms", "lower", "< 50 ms"),
    Metric("throughput_qps", "throughput (frames per second for video)", "吞吐量 / 帧率 (FPS)", "queries/s", "higher",
           "> 100 QPS; > 15 FPS for real-time video"),
    Metric("gflops", "compute per inference", "浮点运算数 (FLOPs)", "GFLOPs", "lower", "lower is better"),
    Metric("model_size_mb", "model size on disk", "模型大小", "MB", "lower", "< 50 MB"),
    Metric("peak_memory_mb", "peak runtime memory", "内存占用", "MB", "lower", "< 500 MB"),
    Metric("params_m", "parameter count", "参数量", "millions", "lower", "< 100 M"),
    Metric("accuracy", "top-1 accuracy", "准确率", "fraction", "higher", "task-dependent"),
    Metric("accuracy_drop_pts", "accuracy drop after optimisation", "精度损失", "points", "lower",
           "< 2 points (classification)"),
    Metric("map", "mean average precision", "mAP", "fraction", "higher", "drop < 5 %",
           unmeasured="mAP needs a detector; the kit's models classify"),
    Metric("power_w", "power while inferring", "功耗", "W", "lower", "< 5 W on mobile"),
    Metric("inferences_per_joule", "energy efficiency", "能效比", "inferences/J", "higher", "higher is better"),
    Metric("energy_mj", "energy per inference", "单次能耗", "mJ", "lower", "< 100 mJ for IoT"),
    Metric("output_std", "output spread over repeated runs", "稳定性", "-", "lower", "< 0.01"),
    Metric("nan_inf_count", "NaN/Inf outputs", "数值精度", "count", "lower", "0"),
    Metric("error_rate_pct", "failed inferences", "错误率", "%", "lower", "< 0.01 %"),
    Metric("cost_usd_per_day", "cloud cost", "云服务费", "USD/day", "lower", "scenario-dependent"),
)

METRIC_FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily("performance", "Performance", "性能指标",
                 "How fast does one answer come back, and how many per second?",
                 ("latency_p99_ms", "throughput_qps", "gflops"), ("01", "02", "03")),
    MetricFamily("resources", "Resources", "资源指标", "How much disk, memory and compute does it take?",
                 ("model_size_mb", "peak_memory_mb", "params_m"), ("03",)),
    MetricFamily("accuracy", "Accuracy", "精度指标", "How much of the answer's quality survives optimisation?",
                 ("accuracy", "accuracy_drop_pts", "map"), ("04", "05", "06", "07", "08")),
    MetricFamily("energy", "Energy", "能耗指标", "How many joules per answer, and how long does a battery last?",
                 ("power_w", "inferences_per_joule", "energy_mj"), ("14",)),
    MetricFamily("reliability", "Reliability", "可靠性指标", "Is the answer the same every time, and always a number?",
                 ("output_std", "nan_inf_count", "error_rate_pct"), ("15",)),
    MetricFamily("cost", "Cost", "成本指标",
                 "What does a million answers cost in hardware, cloud and engineering time?",
                 ("cost_usd_per_day",), ("14", "16")),
)

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_UPPER = ("<", "<=")  # ops that bound a metric from above


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ----------------------------------------------------------------------------- checks and their results


@dataclass(frozen=True)
class Check:
    """One constraint checked against one measurement."""

    metric: str
    op: str
    limit: float
    unit: str
    hard: bool
    measured: float | None
    ok: bool | None       # None: not measured
    margin: float | None  # how far inside (+) or outside (-) the limit, in the metric's unit
    note: str = ""

    @property
    def constraint(self) -> str:
        """The constraint as text, e.g. ``latency_p99_ms < 100``."""
        return f"{self.metric} {self.op} {self.limit:g}"

    @property
    def measurable(self) -> bool:
        """False for a metric the kit cannot measure (:attr:`Metric.unmeasured` says why)."""
        return not METRICS[self.metric].unmeasured

    @property
    def status(self) -> str:
        """PASS, FAIL, ``FAIL (soft)``, ``not measured`` or ``not measurable here: <why>``."""
        if not self.measurable:
            return f"not measurable here: {METRICS[self.metric].unmeasured}"
        if self.ok is None:
            return "not measured"
        return "PASS" if self.ok else ("FAIL" if self.hard else "FAIL (soft)")


@dataclass
class Validation:
    """The result of :meth:`Scenario.check`: one :class:`Check` per constraint. ``passed`` when every hard
    constraint the kit can measure was measured and holds; soft ones are reported but never block."""

    scenario: str
    variant: str          # what was measured ("" for a dict of loose measurements)
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        """Hard constraints that were measured and do not hold."""
        return [c for c in self.checks if c.hard and c.ok is False]

    @property
    def missing(self) -> list[Check]:
        """Hard constraints on a measurable metric that were not measured."""
        return [c for c in self.checks if c.hard and c.measurable and c.ok is None]

    @property
    def passed(self) -> bool:
        return not self.failed and not self.missing

    @property
    def verdict(self) -> str:
        """PASS, FAIL (a measured hard constraint fails) or INCOMPLETE (only unmeasured ones are open)."""
        return "PASS" if self.passed else ("FAIL" if self.failed else "INCOMPLETE")

    def summary(self) -> str:
        """One sentence: the verdict, and for each open constraint its value, margin and limit."""
        who, s = (self.variant, "s") if self.variant else ("the measurements", "")  # verb agreement
        unmeasurable = [c.metric for c in self.checks if not c.measurable]
        tail = f" (not measurable here: {', '.join(unmeasurable)})" if unmeasurable else ""
        if self.passed:
            soft = [c.metric for c in self.checks if not c.hard and c.ok is False]
            return (f"{who} meet{s} every hard constraint of {self.scenario}"
                    + (f" (soft limits missed: {', '.join(soft)})" if soft else "") + tail)
        misses = [f"{c.metric} is {c.measured:.4g} {c.unit}, {abs(c.margin):.3g} {c.unit} "
                  f"{'over' if c.op in _UPPER else 'under'} the limit ({c.op} {c.limit:g})" for c in self.failed]
        misses += [f"{c.metric} was not measured" for c in self.missing]
        head = (f"{who} fail{s} {len(self.failed)} hard constraint(s) of {self.scenario}" if self.failed
                else f"{who} leave{s} {len(self.missing)} hard constraint(s) of {self.scenario} unchecked")
        return f"{head}: {'; '.join(misses)}{tail}"

    def __str__(self) -> str:
        rows = [f"  {c.constraint:28s} measured {'-' if c.measured is None else f'{c.measured:.4g}':>8}  "
                f"{c.status if c.measurable else 'not measurable here'}" for c in self.checks]
        head = f"{self.variant} on {self.scenario}" if self.variant else self.scenario
        return "\n".join([f"{head}: {self.verdict}", *rows])

    def table(self) -> "pd.DataFrame":
        """One row per constraint, indexed by metric: limit, measured, margin, unit, hard, ok, status, note."""
        import pandas as pd

        return pd.DataFrame([{**asdict(c), "constraint": c.constraint, "status": c.status} for c in self.checks]
                            ).set_index("metric")

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "variant": self.variant, "passed": self.passed, "verdict": self.verdict,
                "summary": self.summary(), "checks": [{**asdict(c), "measurable": c.measurable} for c in self.checks]}


# ----------------------------------------------------------------------------- the constraint type


@dataclass(frozen=True)
class Constraint:
    """A limit on one metric of :data:`METRICS`, such as ``latency_p99_ms < 100``. ``soft`` limits are reported
    but never block; ``note`` says where the limit comes from or how the kit reads it."""

    metric: str
    op: str               # "<", "<=", ">" or ">="
    value: float          # in the metric's unit
    soft: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric={self.metric!r} is unknown; known metrics: {sorted(METRICS)}")
        if self.op not in _OPS:
            raise ValueError(f"op={self.op!r} is not allowed; use one of {sorted(_OPS)}")
        if not _is_number(self.value) or not math.isfinite(self.value) or self.value <= 0:
            raise ValueError(f"value={self.value!r} for {self.metric} must be a positive finite number")
        unit = METRICS[self.metric].unit
        if unit == "fraction" and self.value > 1:
            raise ValueError(f"value={self.value!r} for {self.metric} is a fraction and must be <= 1 (e.g. 0.95)")
        if unit in ("points", "%") and self.value >= 100:
            raise ValueError(f"value={self.value!r} for {self.metric} must be below 100 {unit}")
        if not isinstance(self.soft, bool):
            raise ValueError(f"soft={self.soft!r} must be True or False")

    def holds(self, measured: float) -> bool:
        return bool(_OPS[self.op](measured, self.value))

    def margin(self, measured: float) -> float:
        """How far ``measured`` is inside (+) or outside (-) the limit, in the metric's unit."""
        return self.value - measured if self.op in _UPPER else measured - self.value

    def check(self, measured: float | None) -> Check:
        """This constraint against one measurement (``None``: not measured)."""
        value = None if measured is None else float(measured)
        return Check(self.metric, self.op, self.value, METRICS[self.metric].unit, not self.soft, value,
                     None if value is None else self.holds(value), None if value is None else self.margin(value),
                     self.note)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}" + (" (soft)" if self.soft else "")


@dataclass(frozen=True)
class Scenario:
    """A deployment scenario: the constraints to meet (one per metric) and the load it serves, plus what the
    source material says about it. ``rate_per_s`` is the requests per second the deployment serves: a power
    limit applies to energy per inference x this rate. Presets live in :data:`SCENARIOS`; a custom one is
    ``Scenario("mine", (Constraint("latency_p99_ms", "<=", 20),))``, and :meth:`with_limits` changes a preset's."""

    key: str
    constraints: tuple[Constraint, ...]
    _: KW_ONLY
    rate_per_s: float = 10.0
    name: str = ""
    zh: str = ""
    core: tuple[str, ...] = ()          # metrics that decide
    secondary: tuple[str, ...] = ()
    ignorable: tuple[str, ...] = ()
    recipe: tuple[str, ...] = ()        # the source material's recommended techniques, in order
    expected: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # claimed outcome ranges

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"key={self.key!r} must be a non-empty string")
        object.__setattr__(self, "constraints", tuple(self.constraints))
        if not self.constraints:
            raise ValueError(f"scenario {self.key!r} sets no limit; give at least one Constraint on {sorted(METRICS)}")
        for c in self.constraints:
            if not isinstance(c, Constraint):
                raise TypeError(f"constraints must be mclab.scenarios.Constraint objects, got {type(c).__name__}")
        metrics = [c.metric for c in self.constraints]
        twice = sorted({m for m in metrics if metrics.count(m) > 1})
        if twice:
            raise ValueError(f"constraints of {self.key!r} limit {twice} more than once; one constraint per metric")
        if not _is_number(self.rate_per_s) or not math.isfinite(self.rate_per_s) or self.rate_per_s <= 0:
            raise ValueError(f"rate_per_s={self.rate_per_s!r} must be a positive number of requests per second")
        unknown = sorted({*self.core, *self.secondary, *self.ignorable, *self.expected} - set(METRICS))
        if unknown:
            raise ValueError(f"scenario {self.key!r} names unknown metrics {unknown}; known metrics: {sorted(METRICS)}")

    def limit(self, metric: str) -> Constraint | None:
        """The constraint on ``metric``, or None."""
        return next((c for c in self.constraints if c.metric == metric), None)

    def with_limits(self, **limits: float | None) -> Scenario:
        """A copy with limits changed, keyed by metric: a number replaces the value of that metric's constraint
        (keeping its op and soft/hard status) or adds a hard one (``<=`` for a lower-is-better metric, ``>=``
        otherwise); ``None`` drops it. E.g. ``scenario("mobile").with_limits(latency_p99_ms=50)``."""
        cs = {c.metric: c for c in self.constraints}
        for metric, value in limits.items():
            if metric not in METRICS:
                raise ValueError(f"{metric}={value!r}: unknown metric; known metrics: {sorted(METRICS)}")
            old = cs.get(metric)
            if value is None:
                cs.pop(metric, None)
            elif old is None:
                cs[metric] = Constraint(metric, "<=" if METRICS[metric].better == "lower" else ">=", value)
            else:
                cs[metric] = replace(old, value=value, note=f"changed from the preset's {old.value:g}")
        return replace(self, constraints=tuple(cs.values()))

    def check(self, measured: Mapping[str, float | None], *, variant: str = "") -> Validation:
        """Check ``measured`` ({metric key of :data:`METRICS`: value in its unit}; a missing key or ``None``
        means not measured) against every constraint. ``variant`` names what was measured. Returns a
        :class:`Validation`."""
        if not isinstance(measured, Mapping):
            raise ValueError(f"measured must be a dict of metric -> value, got {type(measured).__name__}")
        unknown = sorted(set(measured) - set(METRICS))
        if unknown:
            raise ValueError(f"measured has unknown metrics {unknown}; known metrics: {sorted(METRICS)}")
        for k, v in measured.items():
            if v is not None and (not _is_number(v) or math.isnan(v)):
                raise ValueError(f"measured[{k!r}]={v!r} must be a number or None (not measured)")
        return Validation(self.key, variant, [c.check(measured.get(c.metric)) for c in self.constraints])

    def table(self) -> "pd.DataFrame":
        """One row per constraint, indexed by metric: the limit with its unit, hard/soft (or why the kit cannot
        measure it) and the note."""
        import pandas as pd

        rows = [{"metric": c.metric, "limit": f"{c.op} {c.value:g} {METRICS[c.metric].unit}",
                 "kind": (f"not measurable here: {METRICS[c.metric].unmeasured}" if METRICS[c.metric].unmeasured
                          else "soft" if c.soft else "hard"), "note": c.note} for c in self.constraints]
        return pd.DataFrame(rows).set_index("metric")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- the five presets

# The source's rule of thumb for classifiers (seed 001): an optimisation may cost under 2 accuracy points.
_DROP = Constraint("accuracy_drop_pts", "<", 2, note="the source's rule of thumb for classification")

# Five scenario presets with the source material's constraints and expected results (seed 001). Every preset
# keeps the accuracy-drop rule; the load (rate_per_s) is the one each scenario serves: real-time video runs at
# the source's 15-30 fps, a cloud service at its > 500 QPS, the others at a rate that suits them.
SCENARIOS: dict[str, Scenario] = {s.key: s for s in (
    Scenario(
        "mobile",
        (Constraint("model_size_mb", "<", 10), Constraint("latency_p99_ms", "<", 100), Constraint("power_w", "<", 2),
         _DROP),
        rate_per_s=10.0,  # a phone classifying 10 images a second
        name="Mobile app", zh="手机APP",
        core=("model_size_mb", "power_w", "latency_p99_ms"), secondary=("accuracy",), ignorable=("throughput_qps",),
        recipe=("MobileNetV3 / EfficientNet-Lite", "INT8 quantisation", "TFLite or PyTorch Mobile"),
        expected={"accuracy": (0.85, 0.90), "latency_p99_ms": (30, 80), "model_size_mb": (3, 8)},
    ),
    Scenario(
        "realtime_video",
        (Constraint("throughput_qps", ">", 15, note="the source's FPS > 15: frames are the queries"),
         Constraint("latency_p99_ms", "<", 66, note="one frame within 1/15 s"),
         Constraint("map", ">", 0.4),
         replace(_DROP, note="the source's rule of thumb for classification; on a classifier it stands in for mAP")),
        rate_per_s=30.0,  # a camera at 30 fps
        name="Real-time video", zh="实时视频",
        core=("latency_p99_ms", "throughput_qps"), secondary=("accuracy", "power_w"), ignorable=("model_size_mb",),
        recipe=("YOLO-Nano / MobileNet-SSD", "TensorRT with FP16", "batching"),
        expected={"throughput_qps": (20, 30), "map": (0.42, 0.48), "latency_p99_ms": (35, 50)},
    ),
    Scenario(
        "cloud",
        (Constraint("throughput_qps", ">", 500), Constraint("accuracy", ">", 0.95),
         Constraint("cost_usd_per_day", "<", 200, soft=True,
                    note="priced with an assumed instance (deploy.ProfileConfig.price_per_hour), not measured"),
         _DROP),
        rate_per_s=500.0,
        name="Cloud service", zh="云端服务",
        core=("throughput_qps", "cost_usd_per_day"), secondary=("accuracy", "latency_p99_ms"),
        ignorable=("power_w", "model_size_mb"),
        recipe=("ResNet / EfficientNet", "FP16 with large batches", "dynamic batching"),
        expected={"throughput_qps": (600, 1000), "accuracy": (0.95, 0.97), "latency_p99_ms": (50, 200)},
    ),
    Scenario(
        "edge",
        (Constraint("power_w", "<", 10), Constraint("peak_memory_mb", "<", 2048),
         Constraint("latency_p99_ms", "<", 100), _DROP),
        rate_per_s=30.0,
        name="Edge device", zh="边缘设备",
        core=("power_w", "peak_memory_mb", "latency_p99_ms"), secondary=("accuracy",), ignorable=("cost_usd_per_day",),
        recipe=("a Jetson-class model", "TensorRT with INT8", "memory pooling"),
        expected={"power_w": (5, 8), "peak_memory_mb": (800, 1500), "latency_p99_ms": (50, 80)},
    ),
    Scenario(
        "iot",
        (Constraint("power_w", "<", 1), Constraint("model_size_mb", "<", 1), Constraint("peak_memory_mb", "<", 100),
         Constraint("accuracy", ">=", 0.70, note="the source expects a TinyML model to score 70-80 %: its floor"),
         replace(_DROP, soft=True, note="the source's rule of thumb, advice only here: the accuracy floor decides")),
        rate_per_s=1.0,  # a sensor once a second
        name="IoT / embedded", zh="IoT/嵌入式",
        core=("power_w", "model_size_mb", "peak_memory_mb"), secondary=("latency_p99_ms",),
        ignorable=("throughput_qps",),
        recipe=("a TinyML model", "fixed-point arithmetic", "operator pruning"),
        expected={"power_w": (0.3, 0.8), "model_size_mb": (0.3, 0.8), "accuracy": (0.70, 0.80)},
    ),
)}


def scenario(key: str) -> Scenario:
    """Look up a scenario preset by key (``mobile``, ``realtime_video``, ``cloud``, ``edge``, ``iot``)."""
    try:
        return SCENARIOS[key]
    except (KeyError, TypeError):
        raise ValueError(f"scenario={key!r} is unknown; choose one of {sorted(SCENARIOS)}") from None

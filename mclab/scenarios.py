"""The source material's six metric families and five deployment scenarios, as data.

Later notebooks check their measurements against these presets
(``SCENARIOS["mobile"].check({"latency_ms": 42, ...})``), so the targets live in one place.
Every number here is a *claim* from the source material (seeds 000/001), not a measurement;
notebooks set what they measure beside it. Introduced in notebook 00.
"""
from __future__ import annotations

import operator
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = [
    # data types
    "Metric", "MetricFamily", "Constraint", "Scenario", "ConstraintCheck", "ConstraintReport",
    # data
    "METRICS", "METRIC_FAMILIES", "SCENARIOS",
    # verbs
    "scenario",
]


@dataclass(frozen=True)
class Metric:
    """One measurable quantity; ``key`` carries its unit so numbers are never ambiguous."""

    key: str              # e.g. "latency_ms"
    name: str
    zh: str               # the source material's term
    unit: str
    better: str           # "lower" or "higher"
    typical_target: str   # the source material's rule of thumb, as text


@dataclass(frozen=True)
class MetricFamily:
    key: str
    name: str
    zh: str
    question: str         # what the family answers
    metrics: tuple[str, ...]
    notebooks: tuple[str, ...]  # where the kit measures it


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Constraint:
    """A hard requirement such as ``latency_ms < 100``."""

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric={self.metric!r} is unknown; known metrics: {sorted(METRICS)}")
        if self.op not in _OPS:
            raise ValueError(f"op={self.op!r} is not allowed; use one of {sorted(_OPS)}")

    def holds(self, measured: float) -> bool:
        return bool(_OPS[self.op](measured, self.value))

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class ConstraintCheck:
    constraint: str
    measured: float | None
    ok: bool | None       # None: not measured


@dataclass
class ConstraintReport:
    """The result of :meth:`Scenario.check`: one row per constraint."""

    scenario: str
    checks: list[ConstraintCheck]

    @property
    def passed(self) -> bool:
        """True only when every constraint was measured and holds."""
        return all(c.ok for c in self.checks)

    @property
    def missing(self) -> list[str]:
        return [c.constraint for c in self.checks if c.ok is None]

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "passed": self.passed, "verdict": self.verdict,
                "checks": [asdict(c) for c in self.checks]}

    @property
    def verdict(self) -> str:
        """PASS, FAIL (a measured constraint fails) or INCOMPLETE (only unmeasured ones are open)."""
        if self.passed:
            return "PASS"
        return "FAIL" if any(c.ok is False for c in self.checks) else "INCOMPLETE"

    def __str__(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "not measured"}
        rows = [f"  {c.constraint:28s} measured {'-' if c.measured is None else f'{c.measured:.4g}':>8}  {mark[c.ok]}"
                for c in self.checks]
        return "\n".join([f"{self.scenario}: {self.verdict}", *rows])


@dataclass(frozen=True)
class Scenario:
    """A deployment scenario preset: what matters there and the constraints to meet."""

    key: str
    name: str
    zh: str
    core: tuple[str, ...]          # metrics that decide
    secondary: tuple[str, ...]
    ignorable: tuple[str, ...]
    constraints: tuple[Constraint, ...]
    recipe: tuple[str, ...]        # the source material's recommended techniques, in order
    expected: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # claimed outcome ranges

    def check(self, measured: Mapping[str, float]) -> ConstraintReport:
        """Check measured metrics (keys from :data:`METRICS`) against every constraint."""
        unknown = sorted(set(measured) - set(METRICS))
        if unknown:
            raise ValueError(f"measured has unknown metrics {unknown}; known metrics: {sorted(METRICS)}")
        checks = []
        for c in self.constraints:
            value = measured.get(c.metric)
            checks.append(ConstraintCheck(str(c), None if value is None else float(value),
                                          None if value is None else c.holds(float(value))))
        return ConstraintReport(self.key, checks)


def _metrics(*ms: Metric) -> dict[str, Metric]:
    return {m.key: m for m in ms}


# Typical targets from the source material's cheat sheet (seed 001, "six metric families").
METRICS: dict[str, Metric] = _metrics(
    Metric("latency_ms", "latency per inference", "延迟", "ms", "lower", "< 50 ms"),
    Metric("fps", "frames per second", "帧率 (FPS)", "1/s", "higher", "> 15 for real-time video"),
    Metric("throughput_qps", "throughput", "吞吐量", "queries/s", "higher", "> 100 QPS"),
    Metric("gflops", "compute per inference", "浮点运算数 (FLOPs)", "GFLOPs", "lower", "lower is better"),
    Metric("model_size_mb", "model size on disk", "模型大小", "MB", "lower", "< 50 MB"),
    Metric("memory_mb", "runtime memory", "内存占用", "MB", "lower", "< 500 MB"),
    Metric("params_m", "parameter count", "参数量", "millions", "lower", "< 100 M"),
    Metric("accuracy", "top-1 accuracy", "准确率", "fraction", "higher", "task-dependent"),
    Metric("accuracy_drop_pct", "accuracy drop after optimisation", "精度损失", "points", "lower",
           "< 2 points (classification)"),
    Metric("map", "mean average precision", "mAP", "fraction", "higher", "drop < 5 %"),
    Metric("power_w", "power while inferring", "功耗", "W", "lower", "< 5 W on mobile"),
    Metric("inferences_per_joule", "energy efficiency", "能效比", "inferences/J", "higher", "higher is better"),
    Metric("energy_mj", "energy per inference", "单次能耗", "mJ", "lower", "< 100 mJ for IoT"),
    Metric("output_std", "output spread over repeated runs", "稳定性", "-", "lower", "< 0.01"),
    Metric("nan_inf_count", "NaN/Inf outputs", "数值精度", "count", "lower", "0"),
    Metric("error_rate_pct", "failed inferences", "错误率", "%", "lower", "< 0.01 %"),
    Metric("cost_usd_per_day", "cloud cost", "云服务费", "USD/day", "lower", "scenario-dependent"),
)

METRIC_FAMILIES: tuple[MetricFamily, ...] = (
    MetricFamily("performance", "Performance", "性能指标", "How fast does one answer come back, and how many per second?",
                 ("latency_ms", "throughput_qps", "fps", "gflops"), ("01", "02", "03")),
    MetricFamily("resources", "Resources", "资源指标", "How much disk, memory and compute does it take?",
                 ("model_size_mb", "memory_mb", "params_m"), ("03",)),
    MetricFamily("accuracy", "Accuracy", "精度指标", "How much of the answer's quality survives optimisation?",
                 ("accuracy", "accuracy_drop_pct", "map"), ("04", "05", "06", "07", "08")),
    MetricFamily("energy", "Energy", "能耗指标", "How many joules per answer, and how long does a battery last?",
                 ("power_w", "inferences_per_joule", "energy_mj"), ("14",)),
    MetricFamily("reliability", "Reliability", "可靠性指标", "Is the answer the same every time, and always a number?",
                 ("output_std", "nan_inf_count", "error_rate_pct"), ("15",)),
    MetricFamily("cost", "Cost", "成本指标", "What does a million answers cost in hardware, cloud and engineering time?",
                 ("cost_usd_per_day",), ("14", "16")),
)

# Five scenario presets with the source material's constraints and expected results (seed 001).
SCENARIOS: dict[str, Scenario] = {s.key: s for s in (
    Scenario(
        "mobile", "Mobile app", "手机APP",
        core=("model_size_mb", "power_w", "latency_ms"), secondary=("accuracy",), ignorable=("throughput_qps",),
        constraints=(Constraint("model_size_mb", "<", 10), Constraint("latency_ms", "<", 100),
                     Constraint("power_w", "<", 2)),
        recipe=("MobileNetV3 / EfficientNet-Lite", "INT8 quantisation", "TFLite or PyTorch Mobile"),
        expected={"accuracy": (0.85, 0.90), "latency_ms": (30, 80), "model_size_mb": (3, 8)},
    ),
    Scenario(
        "realtime_video", "Real-time video", "实时视频",
        core=("latency_ms", "fps"), secondary=("accuracy", "power_w"), ignorable=("model_size_mb",),
        constraints=(Constraint("fps", ">", 15), Constraint("latency_ms", "<", 66), Constraint("map", ">", 0.4)),
        recipe=("YOLO-Nano / MobileNet-SSD", "TensorRT with FP16", "batching"),
        expected={"fps": (20, 30), "map": (0.42, 0.48), "latency_ms": (35, 50)},
    ),
    Scenario(
        "cloud", "Cloud service", "云端服务",
        core=("throughput_qps", "cost_usd_per_day"), secondary=("accuracy", "latency_ms"),
        ignorable=("power_w", "model_size_mb"),
        constraints=(Constraint("throughput_qps", ">", 500), Constraint("accuracy", ">", 0.95),
                     Constraint("cost_usd_per_day", "<", 200)),
        recipe=("ResNet / EfficientNet", "FP16 with large batches", "dynamic batching"),
        expected={"throughput_qps": (600, 1000), "accuracy": (0.95, 0.97), "latency_ms": (50, 200)},
    ),
    Scenario(
        "edge", "Edge device", "边缘设备",
        core=("power_w", "memory_mb", "latency_ms"), secondary=("accuracy",), ignorable=("cost_usd_per_day",),
        constraints=(Constraint("power_w", "<", 10), Constraint("memory_mb", "<", 2048),
                     Constraint("latency_ms", "<", 100)),
        recipe=("a Jetson-class model", "TensorRT with INT8", "memory pooling"),
        expected={"power_w": (5, 8), "memory_mb": (800, 1500), "latency_ms": (50, 80)},
    ),
    Scenario(
        "iot", "IoT / embedded", "IoT/嵌入式",
        core=("power_w", "model_size_mb", "memory_mb"), secondary=("latency_ms",), ignorable=("throughput_qps",),
        constraints=(Constraint("power_w", "<", 1), Constraint("model_size_mb", "<", 1),
                     Constraint("memory_mb", "<", 100)),
        recipe=("a TinyML model", "fixed-point arithmetic", "operator pruning"),
        expected={"power_w": (0.3, 0.8), "model_size_mb": (0.3, 0.8), "accuracy": (0.70, 0.80)},
    ),
)}


def scenario(key: str) -> Scenario:
    """Look up a scenario preset by key (``mobile``, ``realtime_video``, ``cloud``, ``edge``, ``iot``)."""
    try:
        return SCENARIOS[key]
    except KeyError:
        raise ValueError(f"scenario={key!r} is unknown; choose one of {sorted(SCENARIOS)}") from None

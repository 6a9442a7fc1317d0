"""Energy and cost: joules per inference, inferences per joule, battery life, cloud and hardware cost.

Power comes from the first source that works here, always named in the result:

1. ``nvml`` — the GPU's total-energy counter (NVIDIA driver, ``pynvml``), when a GPU is present;
2. ``rapl`` — Linux powercap RAPL counters (CPU package + DRAM), when readable; counters wrap around
   at ``max_energy_range_uj`` and sub-domains (core, uncore) are not added to their package;
3. ``estimate`` — a model, clearly labelled: idle power + (TDP − idle) × the CPU utilisation measured
   for this process, or a device power the user gives. An estimate is never called a measurement.

Beside them, :func:`first_principles` prices the counted work itself — picojoules per multiply-accumulate
and per byte moved (Horowitz, ISSCC 2014) — which needs no counter at all.

Introduced in notebook 14.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = [
    # results
    "PowerSource", "EnergyResult", "BatteryResult", "CloudCost",
    # verbs
    "rapl_source", "nvml_source", "estimate_source", "power_sources", "pick_source", "measure_energy",
    "battery_life", "cloud_cost", "hardware_cost",
    # first principles: energy per operation and per byte moved
    "FirstPrinciplesEnergy", "first_principles", "first_principles_of",
    # data
    "POWER_RANGES_W", "INSTANCE_PRICES_USD_H", "HARDWARE_PRICES_USD", "TARGETS",
    "HOROWITZ_PJ", "MAC_PJ", "BYTES_PER_VALUE", "SRAM_PJ_PER_BYTE", "DRAM_PJ_PER_BYTE",
]

# the source material's typical power ranges (W)
POWER_RANGES_W: dict[str, tuple[float, float]] = {
    "phone SoC": (1, 5), "edge device": (5, 15), "desktop GPU": (100, 350), "data-centre GPU": (250, 500)}
# the source material's on-demand cloud prices (USD per hour) and hardware prices (USD)
INSTANCE_PRICES_USD_H: dict[str, float] = {
    "g4dn.xlarge (T4)": 0.526, "p3.2xlarge (V100)": 3.06, "p4d.24xlarge (8x A100)": 32.77}
HARDWARE_PRICES_USD: dict[str, float] = {
    "Coral Edge TPU": 25, "Jetson Nano": 99, "Jetson Xavier NX": 399, "Tesla T4": 2000, "A100": 10000}
# the source material's energy targets
TARGETS = {"energy_mj_iot": 100.0, "power_w_mobile": 5.0}

# Energy per operation and per access in picojoules, 45 nm CMOS at 0.9 V: M. Horowitz, "Computing's energy
# problem (and what we can do about it)", ISSCC 2014, table of energy per operation. The arithmetic rows are
# the paper's; the paper lists 64-bit memory accesses (8 KB SRAM cache 10 pJ, DRAM 1.3–2.6 nJ), and the
# 32-bit figures below are the halves that Han et al. tabulate from it (Deep Compression, ICLR 2016; EIE, 2016).
HOROWITZ_PJ: dict[str, float] = {
    "int8 add": 0.03, "int16 add": 0.05, "int32 add": 0.1, "fp16 add": 0.4, "fp32 add": 0.9,
    "int8 mult": 0.2, "int32 mult": 3.1, "fp16 mult": 1.1, "fp32 mult": 3.7,
    "sram read 32 bit (8 KB)": 5.0, "dram read 32 bit": 640.0,
}
# one multiply-accumulate: a multiply plus an add; INT8 products are summed in 32 bits (as VNNI and every
# INT8 kernel do: 8-bit sums would overflow), so an INT8 MAC is an 8-bit multiply and a 32-bit add
MAC_PJ: dict[str, float] = {
    "fp32": HOROWITZ_PJ["fp32 mult"] + HOROWITZ_PJ["fp32 add"],
    "fp16": HOROWITZ_PJ["fp16 mult"] + HOROWITZ_PJ["fp16 add"],
    "int8": HOROWITZ_PJ["int8 mult"] + HOROWITZ_PJ["int32 add"],
}
BYTES_PER_VALUE: dict[str, int] = {"fp32": 4, "fp16": 2, "int8": 1}
SRAM_PJ_PER_BYTE = HOROWITZ_PJ["sram read 32 bit (8 KB)"] / 4
DRAM_PJ_PER_BYTE = HOROWITZ_PJ["dram read 32 bit"] / 4


# ----------------------------------------------------------------------------- power sources


@dataclass
class PowerSource:
    """A cumulative energy counter (µJ) or a power model. ``kind`` is "measured" or "estimated"."""

    name: str
    kind: str
    read_uj: Callable[[], int] | None      # cumulative counter; None for a model-based estimate
    max_uj: int | None = None              # the counter wraps to 0 after this value
    update_s: float = 0.001                # how often the counter advances; windows must be much longer
    watts: Callable[[float], float] | None = None  # estimate: CPU utilisation (0–1) -> W
    why: str = ""                          # why this source (and why not the better ones)
    subtract_idle: bool = True             # False for a given device power: it is the power while inferring

    def delta_uj(self, before: int, after: int) -> int:
        """Energy between two readings, handling one wrap-around of the counter."""
        if after >= before:
            return after - before
        if self.max_uj is None:
            raise ValueError(f"{self.name}: counter went backwards ({before} -> {after}) and has no known range")
        return self.max_uj - before + after + 1


def _read_int(p: Path) -> int:
    return int(p.read_text().strip())


def rapl_source(root: str | os.PathLike[str] = "/sys/class/powercap") -> PowerSource:
    """RAPL package (+ DRAM) counters under ``root``; raises ValueError saying why when unreadable."""
    base = Path(root)
    if not base.is_dir():
        raise ValueError(f"no powercap interface at {base} (RAPL needs Linux on bare metal or a VM that exposes it)")
    domains = []
    for d in sorted(base.glob("intel-rapl:*")) + sorted(base.glob("amd-rapl:*")):
        parts = d.name.split(":")
        name = (d / "name").read_text().strip() if (d / "name").is_file() else d.name
        # packages are intel-rapl:N; of the sub-domains intel-rapl:N:M only DRAM lies outside the package
        if len(parts) == 2 or name == "dram":
            domains.append(d)
    if not domains:
        raise ValueError(f"no RAPL domains under {base}")
    try:
        ranges = [_read_int(d / "max_energy_range_uj") for d in domains]
        [_read_int(d / "energy_uj") for d in domains]
    except (OSError, ValueError) as e:
        raise ValueError(f"RAPL counters under {base} are not readable ({e.__class__.__name__}: {e}); "
                         f"reading them usually needs root") from None
    if len(set(ranges)) > 1:  # sum of counters with different ranges: track each and add the deltas
        raise ValueError(f"RAPL domains with different counter ranges are not supported: {ranges}")

    def read() -> int:
        return sum(_read_int(d / "energy_uj") for d in domains)

    names = ", ".join(d.name for d in domains)
    # the sum drops by one domain's range + 1 when that domain wraps, so its range is the sum's modulus
    return PowerSource("rapl", "measured", read, max_uj=ranges[0], update_s=0.001,
                       why=f"Linux RAPL counters ({names})")


def nvml_source(index: int = 0) -> PowerSource:
    """The GPU's total-energy counter through NVML; raises ValueError saying why when unavailable."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        raise ValueError("pynvml is not installed (pip install nvidia-ml-py)") from None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except pynvml.NVMLError as e:
        raise ValueError(f"NVML is not usable here: {e}") from None

    def read() -> int:
        return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)) * 1000  # mJ -> µJ

    return PowerSource("nvml", "measured", read, update_s=0.1, why=f"NVML energy counter of GPU {index}")


def estimate_source(*, device_power_w: float | None = None, tdp_w: float | None = None,
                    idle_w: float | None = None, why: str = "") -> PowerSource:
    """A labelled estimate: a fixed device power, or idle + (TDP − idle) × measured CPU utilisation.

    Defaults: TDP 10 W per usable core and idle 20% of TDP — a server-class guess; pass the figures of
    your own device for a better estimate.
    """
    if device_power_w is not None:
        _positive("device_power_w", device_power_w)
        p = float(device_power_w)
        return PowerSource("estimate", "estimated", None, watts=lambda util: p, subtract_idle=False,
                           why=f"{why}; using the given device power {p:g} W".lstrip("; "))
    cores = len(os.sched_getaffinity(0))
    tdp = 10.0 * cores if tdp_w is None else _positive("tdp_w", tdp_w)
    idle = 0.2 * tdp if idle_w is None else float(idle_w)
    if not 0 <= idle < tdp:
        raise ValueError(f"idle_w={idle_w} must be >= 0 and below tdp_w={tdp}")
    return PowerSource("estimate", "estimated", None, update_s=0.01,
                       watts=lambda util: idle + (tdp - idle) * min(max(util, 0.0), 1.0),
                       why=f"{why}; model: {idle:g} W idle + ({tdp:g} W TDP - idle) x CPU utilisation".lstrip("; "))


def _positive(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}={v!r} must be a positive number")
    return float(v)


def power_sources() -> dict[str, str]:
    """Every power source and whether it works here: {name: "ok: ..." or "unavailable: <why>"}."""
    out = {}
    for name, make in (("nvml", nvml_source), ("rapl", rapl_source)):
        try:
            out[name] = f"ok: {make().why}"
        except ValueError as e:
            out[name] = f"unavailable: {e}"
    out["estimate"] = "ok: always available, labelled as an estimate"
    return out


def pick_source(prefer: str | None = None, **estimate_kw: Any) -> PowerSource:
    """The best working source (nvml, then rapl, then a labelled estimate), or the one named ``prefer``."""
    makers = {"nvml": nvml_source, "rapl": rapl_source}
    if prefer is not None and prefer not in (*makers, "estimate"):
        raise ValueError(f"prefer={prefer!r}; allowed: 'nvml', 'rapl', 'estimate' or None")
    reasons = []
    for name, make in makers.items():
        if prefer in (None, name):
            try:
                return make()
            except ValueError as e:
                if prefer == name:
                    raise
                reasons.append(f"{name}: {e}")
    why = f"no energy counter readable ({'; '.join(reasons)})" if reasons else ""
    return estimate_source(why=why, **estimate_kw)


# ----------------------------------------------------------------------------- measuring


@dataclass
class EnergyResult:
    """Energy of repeated inferences; every figure is "measured" or "estimated" as ``kind`` says."""

    source: str
    kind: str                                # "measured" or "estimated"
    why: str
    inferences: int
    window_s: float
    idle_power_w: float
    active_power_w: float                    # average while running
    joules_per_inference: float              # above the idle baseline
    joules_per_inference_chunks: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def millijoules(self) -> float:
        return 1e3 * self.joules_per_inference

    @property
    def inferences_per_joule(self) -> float:
        return 1.0 / self.joules_per_inference if self.joules_per_inference > 0 else math.inf

    @property
    def spread_j(self) -> float:
        import numpy as np

        c = self.joules_per_inference_chunks
        return float(np.std(c, ddof=1)) if len(c) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "millijoules": self.millijoules, "inferences_per_joule": self.inferences_per_joule,
                "spread_j": self.spread_j}

    def __str__(self) -> str:
        return (f"[{self.kind.upper()} via {self.source}] {self.millijoules:.3g} mJ/inference "
                f"(± {1e3 * self.spread_j:.2g}), {self.inferences_per_joule:.3g} inferences/J, "
                f"{self.active_power_w:.3g} W active vs {self.idle_power_w:.3g} W idle over {self.window_s:.2f} s"
                + (f"; {self.why}" if self.kind == "estimated" else "")
                + "".join(f"\n  warning: {w}" for w in self.warnings))


def _cpu_util(cpu_s: float, wall_s: float) -> float:
    return cpu_s / (wall_s * len(os.sched_getaffinity(0))) if wall_s > 0 else 0.0


def measure_energy(fn: Callable[..., Any], *args: Any, source: PowerSource | None = None, chunks: int = 5,
                   min_window_s: float = 1.0, idle_s: float = 0.5, items_per_call: int = 1) -> EnergyResult:
    """Joules per inference of ``fn(*args)``: idle baseline, then ``chunks`` timed chunks of calls.

    Each chunk runs ``fn`` until ``min_window_s / chunks`` has passed; the idle power measured over
    ``idle_s`` is subtracted. Raises when a window is shorter than 10 counter updates (the number would
    be noise); warns when the whole window is under a second. ``items_per_call`` counts a batch's items.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if chunks < 1 or items_per_call < 1:
        raise ValueError(f"chunks={chunks} and items_per_call={items_per_call} must be >= 1")
    for name, v in (("min_window_s", min_window_s), ("idle_s", idle_s)):
        _positive(name, v)
    src = source or pick_source()
    floor = 10 * src.update_s
    if min_window_s / chunks < floor or idle_s < floor:
        raise ValueError(f"a window of {min(min_window_s / chunks, idle_s):.3g} s is shorter than 10 updates of the "
                         f"{src.name} counter ({src.update_s:g} s each); use a longer min_window_s / idle_s")

    def window(run: Callable[[], int], seconds: float) -> tuple[float, int, float]:
        """(joules, calls, wall seconds) of running ``run`` repeatedly for ``seconds``."""
        e0 = src.read_uj() if src.read_uj else 0
        c0, t0 = time.process_time(), time.perf_counter()
        calls = 0
        while (wall := time.perf_counter() - t0) < seconds:
            calls += run()
        wall = time.perf_counter() - t0
        if src.read_uj:
            return src.delta_uj(e0, src.read_uj()) / 1e6, calls, wall
        return src.watts(_cpu_util(time.process_time() - c0, wall)) * wall, calls, wall

    def call() -> int:
        try:
            fn(*args)
        except Exception as e:
            raise RuntimeError(f"fn raised during the energy measurement: {type(e).__name__}: {e}") from e
        return 1

    call()  # warm-up, and surfaces a failing fn before any waiting

    def sleep() -> int:
        time.sleep(min(0.05, idle_s / 10))
        return 0

    idle_w = 0.0
    if src.subtract_idle:
        idle_j, _, idle_wall = window(sleep, idle_s)
        idle_w = idle_j / idle_wall
    per_chunk, total_j, total_calls, total_wall = [], 0.0, 0, 0.0
    for _ in range(chunks):
        j, calls, wall = window(call, min_window_s / chunks)
        per_chunk.append((j - idle_w * wall) / (calls * items_per_call))
        total_j, total_calls, total_wall = total_j + j, total_calls + calls, total_wall + wall
    warnings = []
    if total_wall < 1.0:
        warnings.append(f"window {total_wall:.2f} s is under a second: expect a noisy figure")
    if src.kind == "estimated":
        warnings.append("ESTIMATED, not measured (see `why`): no energy counter was used")
    net = (total_j - idle_w * total_wall) / (total_calls * items_per_call)
    if net <= 0:
        warnings.append("energy above idle is not positive: the workload is too small for this counter")
    return EnergyResult(src.name, src.kind, src.why, total_calls * items_per_call, total_wall, idle_w,
                        total_j / total_wall, net, per_chunk, warnings)


# ----------------------------------------------------------------------------- cost


@dataclass
class BatteryResult:
    """How far a battery goes: inferences per full charge, and hours at a given inference rate."""

    capacity_mah: float
    voltage_v: float
    joules_per_inference: float
    battery_j: float
    inferences_per_charge: float
    hours_at_rate: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def battery_life(joules_per_inference: float, capacity_mah: float, voltage_v: float = 3.85, *,
                 inferences_per_s: float | None = None, other_load_w: float = 0.0) -> BatteryResult:
    """Inferences per charge = battery energy (mAh × 3.6 × V joules) ÷ joules per inference.

    The source material's form — capacity (mAh) ÷ charge per inference (mA·s) — is the same at fixed
    voltage. With ``inferences_per_s``, also the hours the battery lasts at that rate (plus ``other_load_w``).
    """
    for name, v in (("joules_per_inference", joules_per_inference), ("capacity_mah", capacity_mah),
                    ("voltage_v", voltage_v)):
        _positive(name, v)
    if other_load_w < 0:
        raise ValueError(f"other_load_w={other_load_w} must be >= 0")
    battery_j = capacity_mah * 3.6 * voltage_v
    hours = None
    if inferences_per_s is not None:
        _positive("inferences_per_s", inferences_per_s)
        hours = battery_j / (joules_per_inference * inferences_per_s + other_load_w) / 3600
    return BatteryResult(capacity_mah, voltage_v, joules_per_inference, battery_j,
                         battery_j / joules_per_inference, hours)


@dataclass
class CloudCost:
    """Cloud cost of serving at a measured throughput on one instance."""

    instance: str
    price_per_hour: float
    throughput_per_s: float
    usd_per_million: float
    instances_for_qps: int | None = None
    usd_per_day_for_qps: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cloud_cost(throughput_per_s: float, price_per_hour: float | str, *, qps: float | None = None,
               instance: str = "") -> CloudCost:
    """USD per million inferences = 1e6 ÷ throughput ÷ 3600 × hourly price (the source's formula).

    ``price_per_hour`` may name one of :data:`INSTANCE_PRICES_USD_H`. With ``qps``, also how many
    instances serve that load and what they cost per day.
    """
    if isinstance(price_per_hour, str):
        if price_per_hour not in INSTANCE_PRICES_USD_H:
            raise ValueError(f"price_per_hour={price_per_hour!r} is not a number or a known instance "
                             f"({sorted(INSTANCE_PRICES_USD_H)})")
        instance, price_per_hour = price_per_hour, INSTANCE_PRICES_USD_H[price_per_hour]
    price = _positive("price_per_hour", price_per_hour)
    thr = _positive("throughput_per_s", throughput_per_s)
    per_million = 1e6 / thr / 3600 * price
    n = day = None
    if qps is not None:
        _positive("qps", qps)
        n = math.ceil(qps / thr)
        day = n * price * 24
    return CloudCost(instance, price, thr, per_million, n, day)


def hardware_cost(price_usd: float, throughput_per_s: float) -> float:
    """USD of hardware per inference/s of throughput."""
    return _positive("price_usd", price_usd) / _positive("throughput_per_s", throughput_per_s)


# ----------------------------------------------------------------------------- first principles


@dataclass
class FirstPrinciplesEnergy:
    """Energy of counted work priced per operation and per byte (Horowitz 2014): picojoules per part.

    The arithmetic and the memory accesses only — no instruction fetch, control, clocks or idle power, which
    a real CPU adds on top (often many times more); the split between the parts is the lesson.
    """

    precision: str
    macs: float
    bytes_dram: float
    bytes_sram: float
    compute_pj: float
    dram_pj: float
    sram_pj: float

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.dram_pj + self.sram_pj

    @property
    def total_j(self) -> float:
        return self.total_pj * 1e-12

    @property
    def millijoules(self) -> float:
        return self.total_pj * 1e-9

    @property
    def movement_share(self) -> float:
        """Share (0–1) of the total spent moving data (DRAM + SRAM) rather than computing."""
        return (self.dram_pj + self.sram_pj) / self.total_pj if self.total_pj > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_pj": self.total_pj, "total_j": self.total_j, "millijoules": self.millijoules,
                "movement_share": self.movement_share}

    def __str__(self) -> str:
        mac_pj = MAC_PJ[self.precision]
        return (f"[FIRST PRINCIPLES, {self.precision}] {self.millijoules:.3g} mJ: "
                f"compute {self.compute_pj / 1e6:.3g} µJ ({self.macs / 1e6:.3g} M MACs x {mac_pj:g} pJ), "
                f"DRAM {self.dram_pj / 1e6:.3g} µJ ({self.bytes_dram / 1e6:.3g} MB), "
                f"SRAM {self.sram_pj / 1e6:.3g} µJ ({self.bytes_sram / 1e6:.3g} MB); "
                f"{100 * self.movement_share:.0f} % moving data")


def _non_negative(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}={v!r} must be a finite number >= 0")
    return float(v)


def _precision(precision: Any) -> str:
    if precision not in MAC_PJ:
        raise ValueError(f"precision={precision!r} has no energy figures; allowed: {sorted(MAC_PJ)}")
    return precision


def first_principles(macs: float, bytes_dram: float, bytes_sram: float = 0.0,
                     precision: str = "fp32") -> FirstPrinciplesEnergy:
    """Energy of ``macs`` multiply-accumulates and the bytes read from DRAM and from on-chip SRAM.

    compute = macs × :data:`MAC_PJ` [precision] (FP32: 3.7 + 0.9 = 4.6 pJ; INT8: 0.2 + 0.1 = 0.3 pJ);
    DRAM = bytes × 160 pJ (640 pJ per 32 bits); SRAM = bytes × 1.25 pJ (5 pJ per 32 bits) — Horowitz,
    ISSCC 2014, 45 nm (see :data:`HOROWITZ_PJ`). Returns a :class:`FirstPrinciplesEnergy` in picojoules
    (``total_j``, ``millijoules`` for other units). Introduced in notebook 14.
    """
    p = _precision(precision)
    m = _non_negative("macs", macs)
    d = _non_negative("bytes_dram", bytes_dram)
    s = _non_negative("bytes_sram", bytes_sram)
    return FirstPrinciplesEnergy(p, m, d, s, m * MAC_PJ[p], d * DRAM_PJ_PER_BYTE, s * SRAM_PJ_PER_BYTE)


def first_principles_of(cost: Any, precision: str = "fp32", *, batch: int | None = None,
                        activations: str = "sram") -> FirstPrinciplesEnergy:
    """First-principles energy **per image** of a model counted by ``mclab.flops.count``.

    ``cost`` is a :class:`mclab.flops.CostReport` (anything with ``macs``, ``params``, ``activation_bytes``
    and ``input_shape``), counted at any batch. The traffic model: every weight is read once from DRAM per
    call and shared by the ``batch`` images of that call (default: the batch ``cost`` was counted at); every
    activation is written once and read once (2 × its bytes), in on-chip ``"sram"`` when it fits in the
    caches or in ``"dram"`` when it spills. Weights and activations take :data:`BYTES_PER_VALUE` [precision]
    bytes per value (INT8's per-channel scales are left out: under 0.1 % of the bytes). Returns a
    :class:`FirstPrinciplesEnergy` in picojoules per image. Introduced in notebook 14.
    """
    for attr in ("macs", "params", "activation_bytes", "input_shape"):
        if not hasattr(cost, attr):
            raise TypeError(f"cost must be a mclab.flops.CostReport (no attribute {attr!r}), got {type(cost).__name__}")
    p = _precision(precision)
    if activations not in ("sram", "dram"):
        raise ValueError(f"activations={activations!r}; allowed: 'sram' (fits in the caches) or 'dram' (spills)")
    counted = int(cost.input_shape[0]) if cost.input_shape else 1
    if batch is None:
        batch = counted
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch={batch!r} must be an int >= 1")
    width = BYTES_PER_VALUE[p]
    weights = cost.params * width / batch                           # bytes per image
    acts = 2 * cost.activation_bytes / counted * width / 4          # counted in FP32: 4 bytes per value
    dram, sram = (weights, acts) if activations == "sram" else (weights + acts, 0.0)
    return first_principles(cost.macs / counted, dram, sram, p)

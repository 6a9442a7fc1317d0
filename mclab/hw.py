"""The machine described: CPU features, memory, GPU, runtimes and their devices (``mclab doctor``).

Pure helpers at the bottom (parsing ``/proc/cpuinfo`` flags, reading memory), one public
verb on top: :func:`doctor` returns a :class:`DoctorReport`. The runtimes are the registry's
(:data:`mclab.runtimes.RUNTIMES`); each is probed in a child Python process with its plug-in's
``probe()``, so a missing or broken runtime — even one that crashes on import — is reported,
never raised, and its cold import time is measured as a side effect. Measurements of the
machine (matmul GFLOP/s, memory bandwidth) live in :mod:`mclab.bench`. Introduced in notebook 00.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    # results
    "CpuInfo", "GpuInfo", "RuntimeInfo", "Verdict", "DoctorReport",
    # primitives
    "parse_cpu_flags", "features_from_flags",
    # verbs
    "doctor", "cpu_info", "gpus", "probe_runtime",
    # data
    "PACKAGES", "CPU_FEATURES",
]

# Packages whose versions doctor reports (distribution names, as pip knows them).
PACKAGES = (
    "torch", "torchvision", "numpy", "onnx", "onnxruntime", "openvino", "tensorflow",
    "tensorrt", "thop", "scikit-learn", "matplotlib", "seaborn", "jupyterlab", "ipywidgets",
    "papermill", "nbclient", "ipykernel", "tqdm", "llama-cpp-python", "gguf",
)

# Instruction-set features that change what is fast, and the /proc/cpuinfo flags that
# announce them on x86-64 (``flags``) and on 64-bit Arm (``Features``).
CPU_FEATURES: dict[str, tuple[str, ...]] = {
    "AVX2": ("avx2",),
    "AVX-512": ("avx512f",),
    "AVX-512 VNNI": ("avx512_vnni",),   # INT8 dot products in one instruction
    "AVX-VNNI": ("avx_vnni",),          # the same on 256-bit registers (Alder Lake and later)
    "AMX-INT8": ("amx_int8",),          # tile matrix multiply, Sapphire Rapids and later
    "AMX-BF16": ("amx_bf16",),
    "AMX-FP16": ("amx_fp16",),
    "AVX-512 BF16": ("avx512_bf16",),
    "AVX-512 FP16": ("avx512_fp16",),   # FP16 arithmetic, not just conversion (F16C)
    "F16C": ("f16c",),                  # FP16 <-> FP32 conversion only
    "NEON dot product": ("asimddp",),   # Arm INT8 dot products
    "Arm I8MM": ("i8mm",),
    "Arm BF16": ("bf16",),
    "Arm FP16": ("asimdhp", "fphp"),
}


@dataclass
class CpuInfo:
    """The CPU as the operating system reports it."""

    model: str
    arch: str
    logical_cores: int           # what the OS shows
    usable_cores: int            # what this process may run on (affinity, cgroups aside)
    features: dict[str, bool]    # CPU_FEATURES name -> present; empty when unknown
    memory_total_bytes: int | None
    memory_available_bytes: int | None


@dataclass
class GpuInfo:
    """One NVIDIA GPU as ``nvidia-smi`` reports it."""

    name: str
    memory_bytes: int
    driver: str
    cuda: str | None             # the driver's highest supported CUDA version


@dataclass
class RuntimeInfo:
    """Whether one runtime imports here, its version, devices and cold import time."""

    name: str
    available: bool
    version: str | None = None
    devices: list[str] = field(default_factory=list)
    import_s: float | None = None   # import + device query in a fresh process, seconds
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None        # why it is unavailable


@dataclass
class Verdict:
    """A plain-language line about one capability."""

    capability: str
    status: str                  # "ok", "slow" or "missing"
    message: str

    def __str__(self) -> str:
        return f"{self.capability}: {self.message}"


@dataclass
class DoctorReport:
    """Everything ``mclab doctor`` found; ``as_dict()`` is what ``--json`` prints."""

    python: str
    platform: str
    packages: dict[str, str | None]
    cpu: CpuInfo
    threads: dict[str, Any]
    gpus: list[GpuInfo]
    runtimes: list[RuntimeInfo]
    verdicts: list[Verdict]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def runtime(self, name: str) -> RuntimeInfo:
        for r in self.runtimes:
            if r.name == name:
                return r
        raise KeyError(f"runtime {name!r} was not probed; probed: {[r.name for r in self.runtimes]}")

    def to_frame(self):
        """The runtimes as a pandas DataFrame (one row each)."""
        import pandas as pd

        return pd.DataFrame([{
            "runtime": r.name, "available": r.available, "version": r.version,
            "devices": ", ".join(r.devices), "import_s": r.import_s, "error": r.error,
        } for r in self.runtimes])

    def __str__(self) -> str:
        c = self.cpu
        lines = [
            f"Python     {self.python} on {self.platform}",
            f"CPU        {c.model} ({c.arch}), {c.usable_cores}/{c.logical_cores} cores usable",
            "Features   " + (", ".join(k for k, v in c.features.items() if v) or "unknown"),
            f"Memory     {_gib(c.memory_total_bytes)} total, {_gib(c.memory_available_bytes)} available",
            f"Threads    {self.threads}",
        ]
        for g in self.gpus:
            lines.append(f"GPU        {g.name}, {_gib(g.memory_bytes)}, driver {g.driver}, CUDA {g.cuda}")
        lines.append("")
        lines.append(f"{'runtime':14s} {'version':16s} {'import s':>8s}  devices / error")
        for r in self.runtimes:
            where = ", ".join(r.devices) if r.available else f"NOT AVAILABLE: {r.error}"
            imp = f"{r.import_s:8.2f}" if r.import_s is not None else " " * 8
            lines.append(f"{r.name:14s} {r.version or '-':16s} {imp}  {where}")
        lines.append("")
        lines.extend(f"[{v.status:>7s}] {v}" for v in self.verdicts)
        return "\n".join(lines)


# ----------------------------------------------------------------------------- primitives


def parse_cpu_flags(cpuinfo_text: str) -> tuple[str, set[str]]:
    """Return (model name, set of flags) from the text of ``/proc/cpuinfo``."""
    model, flags = "", set()
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


def features_from_flags(flags: set[str]) -> dict[str, bool]:
    """Map raw CPU flags to the named features in :data:`CPU_FEATURES`."""
    if not flags:
        return {}
    return {name: any(f in flags for f in aliases) for name, aliases in CPU_FEATURES.items()}


def _meminfo() -> tuple[int | None, int | None]:
    """(total, available) bytes of RAM from /proc/meminfo, or sysconf where that is missing."""
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), None
        except (ValueError, OSError, AttributeError):
            return None, None
    kb = {k.strip(): int(v.split()[0]) * 1024 for k, v in
          (line.split(":", 1) for line in text.splitlines() if ":" in line) if v.split()}
    return kb.get("MemTotal"), kb.get("MemAvailable")


def cpu_info() -> CpuInfo:
    """Describe this machine's CPU and memory (cheap: reads /proc, imports nothing heavy)."""
    try:
        model, flags = parse_cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        model, flags = "", set()
    total, avail = _meminfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    return CpuInfo(
        model=model or platform.processor() or "unknown",
        arch=platform.machine(),
        logical_cores=os.cpu_count() or 1,
        usable_cores=usable,
        features=features_from_flags(flags),
        memory_total_bytes=total,
        memory_available_bytes=avail,
    )


def gpus() -> list[GpuInfo]:
    """NVIDIA GPUs from ``nvidia-smi``; an empty list when there is none or no driver."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True).stdout
        header = subprocess.run([smi], capture_output=True, text=True, timeout=20).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    cuda = None
    if "CUDA Version:" in header:
        cuda = header.split("CUDA Version:")[1].split()[0].strip("|")
    found = []
    for line in out.strip().splitlines():
        name, mem_mib, driver = (s.strip() for s in line.split(","))
        found.append(GpuInfo(name=name, memory_bytes=int(float(mem_mib)) * 2**20, driver=driver, cuda=cuda))
    return found


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ------------------------------------------------------------------ runtime probes (child)
# Each runtime is probed inside a fresh interpreter (``python -m mclab.hw probe MODULE PACKAGE NAME``): the child
# imports the runtime's plug-in module and calls its ``probe()`` (or, without one, imports the package and reads
# its version), then its ``available()``, and prints a dict of RuntimeInfo fields. Any failure there is ``error``.


def _run_probe_here(module: str, requires: str) -> dict[str, Any]:
    import importlib

    start = time.perf_counter()
    try:
        impl = importlib.import_module(module)
        if hasattr(impl, "probe"):
            info = impl.probe()
        else:
            mod = getattr(impl, "import_framework", lambda: importlib.import_module(requires))()
            info = {"version": getattr(mod, "__version__", "?"), "devices": ["CPU"]}
        ok, why = impl.available() if hasattr(impl, "available") else (True, "")
    except ImportError as e:
        return {"available": False, "error": f"not installed ({e.name or e})"}
    except Exception as e:  # a broken install: report it, the caller decides
        return {"available": False, "error": f"{type(e).__name__}: {e}"}
    if not ok:
        return {"available": False, "error": why, "version": info.get("version")}
    return {"available": True, "import_s": time.perf_counter() - start, **info}


def probe_runtime(name: str, timeout_s: float = 120.0) -> RuntimeInfo:
    """Probe one registered runtime (:data:`mclab.runtimes.RUNTIMES`) in a fresh interpreter with its plug-in's
    ``probe()``; never raises for a missing or broken one."""
    from .runtimes.base import RUNTIMES

    if name not in RUNTIMES:
        raise ValueError(f"runtime={name!r} is unknown; known runtimes: {sorted(RUNTIMES)}")
    spec = RUNTIMES[name]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run([sys.executable, "-m", "mclab.hw", "probe", spec.module, spec.requires, name],
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return RuntimeInfo(name, False, error=f"probe timed out after {timeout_s:.0f} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return RuntimeInfo(name, False, error=f"crashed on import (exit {proc.returncode}): {tail}")
    info = RuntimeInfo(name=name, **json.loads(lines[-1]))
    if info.error and info.error.startswith("not installed") and spec.install:
        info.error += f"; {spec.install}"
    return info


# ---------------------------------------------------------------------------- verdicts


def _verdicts(cpu: CpuInfo, gpu_list: list[GpuInfo], runtimes: list[RuntimeInfo]) -> list[Verdict]:
    f = cpu.features
    out: list[Verdict] = []
    if not f:
        out.append(Verdict("CPU features", "slow", "unknown on this OS — INT8/BF16 speed-ups cannot be predicted"))
    else:
        int8 = next((k for k in ("AMX-INT8", "AVX-512 VNNI", "AVX-VNNI", "NEON dot product") if f.get(k)), None)
        out.append(Verdict("INT8 on CPU", "ok", f"fast path available ({int8})") if int8 else
                   Verdict("INT8 on CPU", "slow", "no VNNI/AMX/dot-product instructions — INT8 saves size, "
                           "but expect little speed-up"))
        bf16 = next((k for k in ("AMX-BF16", "AVX-512 BF16", "Arm BF16") if f.get(k)), None)
        out.append(Verdict("BF16 on CPU", "ok", f"native ({bf16})") if bf16 else
                   Verdict("BF16 on CPU", "slow", "emulated — BF16 will be slower than FP32 here"))
        fp16 = next((k for k in ("AVX-512 FP16", "AMX-FP16", "Arm FP16") if f.get(k)), None)
        out.append(Verdict("FP16 on CPU", "ok", f"the CPU has FP16 arithmetic ({fp16}); whether a runtime "
                           "uses it varies — measure") if fp16 else
                   Verdict("FP16 on CPU", "slow", "conversion only — FP16 halves size but is not faster on CPU"))
        simd = "AVX-512" if f.get("AVX-512") else "AVX2" if f.get("AVX2") else None
        out.append(Verdict("FP32 SIMD", "ok" if simd else "slow", f"{simd} vector units" if simd else
                           "no AVX2 — expect slow FP32 kernels"))
    if gpu_list:
        g = gpu_list[0]
        out.append(Verdict("GPU", "ok", f"{g.name}, {_gib(g.memory_bytes)} — GPU sections will run"))
    else:
        out.append(Verdict("GPU", "missing", "none — GPU sections (CUDA timing, TensorRT) will be skipped"))
    for r in runtimes:
        if r.available:
            out.append(Verdict(r.name, "ok", f"{r.version} on {', '.join(r.devices)}"))
        else:
            out.append(Verdict(r.name, "missing", r.error or "unavailable"))
    from .energy import power_sources

    live = [f"{name} ({status[4:]})" for name, status in power_sources().items()
            if status.startswith("ok") and name != "estimate"]
    out.append(Verdict("energy", "ok", f"measured from {live[0]}") if live else
               Verdict("energy", "missing", "no NVML or RAPL counter is readable — energy figures will be "
                       "ESTIMATED from CPU utilisation x TDP and labelled so (notebook 14)"))
    return out


def _threads(cpu: CpuInfo) -> dict[str, Any]:
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
           if k in os.environ}
    return {"usable_cores": cpu.usable_cores, "env": env}


def doctor(runtimes: tuple[str, ...] | list[str] | None = None) -> DoctorReport:
    """Check this machine and every registered runtime (:data:`mclab.runtimes.RUNTIMES`); returns a
    :class:`DoctorReport`.

    ``runtimes`` limits the probes (default: all of them). Takes a few seconds per runtime, most of it
    TensorFlow's import. Introduced in notebook 00.
    """
    from .runtimes.base import RUNTIMES

    names = list(RUNTIMES) if runtimes is None else list(runtimes)
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise ValueError(f"runtimes={unknown} unknown; known runtimes: {sorted(RUNTIMES)}")
    cpu = cpu_info()
    gpu_list = gpus()
    probed = [probe_runtime(n) for n in names]
    threads = _threads(cpu)
    threads.update({r.name: r.details["num_threads"] for r in probed if r.available and "num_threads" in r.details})
    return DoctorReport(
        python=platform.python_version(),
        platform=platform.platform(),
        packages=_package_versions(),
        cpu=cpu, threads=threads, gpus=gpu_list, runtimes=probed,
        verdicts=_verdicts(cpu, gpu_list, probed),
    )


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


if __name__ == "__main__":  # python -m mclab.hw probe MODULE PACKAGE NAME  (used by probe_runtime)
    if len(sys.argv) == 5 and sys.argv[1] == "probe":
        print(json.dumps(_run_probe_here(sys.argv[2], sys.argv[3]), default=str))
    else:
        sys.exit("usage: python -m mclab.hw probe MODULE PACKAGE NAME")

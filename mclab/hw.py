"""The machine: CPU features, memory, GPU, runtimes and their devices (``mclab doctor``).

Pure helpers at the bottom (parsing ``/proc/cpuinfo`` flags, reading memory), one public
verb on top: :func:`doctor` returns a :class:`DoctorReport`. Each runtime is probed in a
child Python process, so a missing or broken runtime — even one that crashes on import —
is reported, never raised, and its cold import time is measured as a side effect.
Introduced in notebook 00.
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
from typing import Any, Callable

__all__ = [
    # results
    "CpuInfo", "GpuInfo", "RuntimeInfo", "Verdict", "DoctorReport",
    # primitives
    "parse_cpu_flags", "features_from_flags",
    # verbs
    "doctor", "cpu_info", "gpus", "probe_runtime", "matmul_gflops", "memory_bandwidth",
    # data
    "RUNTIMES", "PACKAGES", "CPU_FEATURES",
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
# Each probe runs inside a fresh interpreter (``python -m mclab.hw probe NAME``) and returns
# a dict of RuntimeInfo fields. An ImportError or any failure there becomes ``error``.


def _probe_torch() -> dict[str, Any]:
    import torch

    devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return {
        "version": torch.__version__, "devices": devices,
        "details": {
            "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "num_threads": torch.get_num_threads(),
            "compiler_for_inductor": shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++"),
        },
    }


def _probe_onnxruntime() -> dict[str, Any]:
    import onnxruntime as ort

    return {"version": ort.__version__, "devices": ort.get_available_providers(),
            "details": {"device": ort.get_device()}}


def _probe_openvino() -> dict[str, Any]:
    import openvino as ov

    core = ov.Core()
    devices = [f"{d} ({core.get_property(d, 'FULL_DEVICE_NAME')})" for d in core.available_devices]
    return {"version": ov.get_version().split("-")[0], "devices": devices}


def _probe_tflite() -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.lite.Interpreter  # noqa: B018 — raises AttributeError where TFLite is not bundled
    gpus_ = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {"version": tf.__version__, "devices": ["CPU"] + gpus_,
            "details": {"interpreter": "tf.lite.Interpreter"}}


def _probe_executorch() -> dict[str, Any]:
    import executorch.runtime as et_runtime
    from executorch import version

    backends = et_runtime.Runtime.get().backend_registry.registered_backend_names
    return {"version": version.__version__, "devices": ["CPU"], "details": {"backends": backends}}


def _probe_tensorrt() -> dict[str, Any]:
    import tensorrt as trt

    return {"version": trt.__version__, "devices": ["cuda"]}


# name -> (probe, what to install when it is missing)
RUNTIMES: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "torch": (_probe_torch, "pip install -c constraints.txt torch torchvision"),
    "onnxruntime": (_probe_onnxruntime, "pip install -c constraints.txt onnxruntime"),
    "openvino": (_probe_openvino, "pip install -c constraints.txt openvino"),
    "tflite": (_probe_tflite, "pip install -c constraints.txt tensorflow"),
    "tensorrt": (_probe_tensorrt, "needs an NVIDIA GPU and `pip install tensorrt`"),
    "executorch": (_probe_executorch, "pip install -c constraints.txt executorch"),
}


def _run_probe_here(name: str) -> dict[str, Any]:
    probe, hint = RUNTIMES[name]
    start = time.perf_counter()
    try:
        info = probe()
    except ImportError as e:
        return {"available": False, "error": f"not installed ({e.name or e}); {hint}"}
    except Exception as e:  # a broken install: report it, the caller decides
        return {"available": False, "error": f"{type(e).__name__}: {e}"}
    return {"available": True, "import_s": time.perf_counter() - start, **info}


def probe_runtime(name: str, timeout_s: float = 120.0) -> RuntimeInfo:
    """Probe one runtime in a fresh interpreter; never raises for a missing or broken one."""
    if name not in RUNTIMES:
        raise ValueError(f"runtime={name!r} is unknown; known runtimes: {sorted(RUNTIMES)}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    try:
        proc = subprocess.run([sys.executable, "-m", "mclab.hw", "probe", name],
                              capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return RuntimeInfo(name, False, error=f"probe timed out after {timeout_s:.0f} s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return RuntimeInfo(name, False, error=f"crashed on import (exit {proc.returncode}): {tail}")
    return RuntimeInfo(name=name, **json.loads(lines[-1]))


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
    torch_rt = next((r for r in runtimes if r.name == "torch" and r.available), None)
    if torch_rt is not None:
        cxx = torch_rt.details.get("compiler_for_inductor")
        out.append(Verdict("torch.compile", "ok" if cxx else "missing",
                           f"inductor can build CPU kernels with {cxx}" if cxx else
                           "no C++ compiler found — torch.compile's CPU backend cannot build kernels"))
    return out


def _threads(cpu: CpuInfo) -> dict[str, Any]:
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
           if k in os.environ}
    return {"usable_cores": cpu.usable_cores, "env": env}


def doctor(runtimes: tuple[str, ...] | list[str] | None = None) -> DoctorReport:
    """Check this machine and every runtime; returns a :class:`DoctorReport`.

    ``runtimes`` limits the probes (default: all of :data:`RUNTIMES`). Takes a few seconds
    per runtime, most of it TensorFlow's import. Introduced in notebook 00.
    """
    names = list(RUNTIMES) if runtimes is None else list(runtimes)
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown:
        raise ValueError(f"runtimes={unknown} unknown; known runtimes: {sorted(RUNTIMES)}")
    cpu = cpu_info()
    gpu_list = gpus()
    probed = [probe_runtime(n) for n in names]
    threads = _threads(cpu)
    torch_rt = next((r for r in probed if r.name == "torch" and r.available), None)
    if torch_rt:
        threads["torch"] = torch_rt.details.get("num_threads")
    return DoctorReport(
        python=platform.python_version(),
        platform=platform.platform(),
        packages=_package_versions(),
        cpu=cpu, threads=threads, gpus=gpu_list, runtimes=probed,
        verdicts=_verdicts(cpu, gpu_list, probed),
    )


def _calls_per_second(op: Callable[[], Any], device: Any, min_time_s: float, *, warmup: int,
                      sync_every: int | None = None) -> float:
    """Calls of ``op`` per second, repeated for at least ``min_time_s`` after ``warmup`` untimed calls. On a CUDA
    device the queue is drained (:func:`mclab.bench.sync_fn`) before each clock read, and every ``sync_every``
    calls so that the queue of launched kernels stays short."""
    from .bench import sync_fn  # bench reads this module's cpu_info at import

    sync = sync_fn(device)
    for _ in range(warmup):
        op()
    if sync:
        sync()
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time_s:
        op()
        reps += 1
        if sync and sync_every and reps % sync_every == 0:
            sync()
    if sync:
        sync()
    return reps / (time.perf_counter() - start)


def matmul_gflops(dtype: str = "float32", n: int = 1024, min_time_s: float = 0.3,
                  device: str = "cpu") -> float:
    """Measured dense matrix-multiply speed, GFLOP/s (2·n³ FLOPs per n×n product).

    Repeats ``torch.mm`` for at least ``min_time_s`` after a warm-up; on a GPU it synchronises
    before reading the clock. Introduced in notebook 00; the roofline in notebook 03 uses it.
    """
    import torch

    dt = getattr(torch, dtype, None)
    if not isinstance(dt, torch.dtype) or not dt.is_floating_point:
        raise ValueError(f"dtype={dtype!r} is not a torch floating-point dtype; e.g. 'float32', 'bfloat16', 'float16'")
    if n < 16:
        raise ValueError(f"n={n} is too small to measure; use n >= 16")
    if min_time_s <= 0:
        raise ValueError(f"min_time_s={min_time_s} must be > 0")
    dev = torch.device(device)
    a = torch.randn(n, n, device=dev).to(dt)
    b = torch.randn(n, n, device=dev).to(dt)
    return 2 * n**3 * _calls_per_second(lambda: torch.mm(a, b), device, min_time_s, warmup=3, sync_every=8) / 1e9


def memory_bandwidth(mb: int = 256, min_time_s: float = 0.3, device: str = "cpu") -> float:
    """Measured memory bandwidth, GB/s: repeated copies of an ``mb``-megabyte buffer (read + write).

    The buffer should be far larger than the last-level cache so the copy streams from DRAM.
    Introduced in notebook 03 for the roofline.
    """
    import torch

    if mb < 1:
        raise ValueError(f"mb={mb} must be >= 1 (megabytes to copy)")
    if min_time_s <= 0:
        raise ValueError(f"min_time_s={min_time_s} must be > 0")
    n = mb * 10**6 // 4
    src = torch.ones(n, device=torch.device(device))
    dst = torch.empty_like(src)
    return 2 * 4 * n * _calls_per_second(lambda: dst.copy_(src), device, min_time_s, warmup=1) / 1e9  # read + write


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


if __name__ == "__main__":  # python -m mclab.hw probe NAME  (used by probe_runtime)
    if len(sys.argv) == 3 and sys.argv[1] == "probe" and sys.argv[2] in RUNTIMES:
        print(json.dumps(_run_probe_here(sys.argv[2]), default=str))
    else:
        sys.exit(f"usage: python -m mclab.hw probe {{{','.join(RUNTIMES)}}}")

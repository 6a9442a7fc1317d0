from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from mclab import hw

SPR_FLAGS = "fpu sse avx avx2 f16c avx512f avx512_vnni avx_vnni avx512_bf16 amx_tile amx_int8 amx_bf16 avx512_fp16"


def test_parse_cpuinfo_x86_and_arm():
    model, flags = hw.parse_cpu_flags(f"processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: {SPR_FLAGS}\n"
                                      f"processor\t: 1\nmodel name\t: Test CPU\nflags\t\t: {SPR_FLAGS}\n")
    assert model == "Test CPU" and "amx_int8" in flags
    f = hw.features_from_flags(flags)
    assert f["AMX-INT8"] and f["AVX-512 VNNI"] and f["AVX-512 BF16"] and not f["NEON dot product"]
    _, arm = hw.parse_cpu_flags("processor : 0\nFeatures : fp asimd asimddp i8mm bf16 asimdhp\n")
    fa = hw.features_from_flags(arm)
    assert fa["NEON dot product"] and fa["Arm I8MM"] and fa["Arm FP16"] and not fa["AVX2"]
    assert hw.features_from_flags(set()) == {}


def test_cpu_info_matches_the_os():
    cpu = hw.cpu_info()
    assert cpu.logical_cores == os.cpu_count()
    assert cpu.usable_cores == len(os.sched_getaffinity(0))
    assert cpu.memory_total_bytes and cpu.memory_total_bytes > 2**30
    if os.path.exists("/proc/cpuinfo"):
        flags = open("/proc/cpuinfo").read()
        assert cpu.features["AVX2"] == (" avx2" in flags)


@pytest.mark.parametrize("flags, int8, bf16", [
    (SPR_FLAGS, "ok", "ok"),
    ("fpu sse avx avx2 f16c", "slow", "slow"),
])
def test_verdicts_follow_features(flags, int8, bf16):
    cpu = hw.CpuInfo("x", "x86_64", 2, 2, hw.features_from_flags(set(flags.split())), None, None)
    v = {x.capability: x for x in hw._verdicts(cpu, [], [])}
    assert v["INT8 on CPU"].status == int8 and v["BF16 on CPU"].status == bf16
    assert v["GPU"].status == "missing" and "skipped" in v["GPU"].message


def test_energy_verdict_names_the_live_source(monkeypatch):
    from mclab import energy

    cpu = hw.CpuInfo("x", "x86_64", 2, 2, {}, None, None)
    monkeypatch.setattr(energy, "power_sources", lambda: {"nvml": "unavailable: no GPU", "rapl": "unavailable: x",
                                                          "estimate": "ok: always"})
    v = {x.capability: x for x in hw._verdicts(cpu, [], [])}["energy"]
    assert v.status == "missing" and "ESTIMATED" in v.message
    monkeypatch.setattr(energy, "power_sources", lambda: {"nvml": "unavailable: no GPU", "rapl": "ok: package-0",
                                                          "estimate": "ok: always"})
    v = {x.capability: x for x in hw._verdicts(cpu, [], [])}["energy"]
    assert v.status == "ok" and "rapl" in v.message


def test_missing_and_broken_runtimes_are_reported_not_raised(monkeypatch, tmp_path):
    # two plug-ins whose probes fail: one cannot import its framework, one finds a broken install
    (tmp_path / "broken_rt.py").write_text(
        "def probe():\n    raise RuntimeError('libfoo.so: cannot open shared object file')\n")
    (tmp_path / "missing_rt.py").write_text("def probe():\n    import nope  # noqa: F401\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = hw._run_probe_here("broken_rt", "foo")
    assert broken == {"available": False, "error": "RuntimeError: libfoo.so: cannot open shared object file"}
    out = hw._run_probe_here("missing_rt", "nope")
    assert not out["available"] and "not installed (nope)" in out["error"]
    # through the registry and a child interpreter, the install hint of the runtime's Spec is added
    from mclab.runtimes import RUNTIMES, Spec

    monkeypatch.setitem(RUNTIMES, "missing", Spec("missing_rt", "nope", ("fp32",), install="pip install nope"))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    info = hw.probe_runtime("missing")
    assert not info.available and "not installed (nope)" in info.error and "pip install nope" in info.error


def test_probe_survives_a_crashing_import(monkeypatch, tmp_path):
    # a runtime whose import kills the interpreter: the child dies, the report says so
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\nif sys.argv[-1] == 'onnxruntime':\n    os._exit(139)\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    info = hw.probe_runtime("onnxruntime")
    assert not info.available and "exit 139" in info.error


def test_doctor_reports_real_runtimes():
    report = hw.doctor(runtimes=["onnxruntime", "openvino", "tensorrt"])
    ort = report.runtime("onnxruntime")
    import onnxruntime

    assert ort.available and ort.version == onnxruntime.__version__
    assert "CPUExecutionProvider" in ort.devices
    assert report.runtime("openvino").available and any(d.startswith("CPU") for d in report.runtime("openvino").devices)
    trt = report.runtime("tensorrt")
    if not trt.available:
        assert "tensorrt" in trt.error
    assert len(report.gpus) == (len(hw.gpus()))
    d = report.as_dict()
    assert d["cpu"]["usable_cores"] == len(os.sched_getaffinity(0)) and "verdicts" in d
    assert "INT8 on CPU" in str(report)
    with pytest.raises(ValueError, match="known runtimes"):
        hw.doctor(runtimes=["tensorflow-lite-nope"])


def test_gpu_section_matches_nvidia_smi():
    if shutil.which("nvidia-smi") is None:
        assert hw.gpus() == []
    else:
        names = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
        assert all(g.name in names for g in hw.gpus())

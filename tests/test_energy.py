"""mclab.energy: fake counters for the measured paths (RAPL, NVML), the labelled estimate, cost maths."""
from __future__ import annotations

import math
import sys
import time
import types

import pytest

from mclab import energy


def _fake_counter(idle_w: float, uj_per_call: int, max_uj: int | None, update_s: float = 0.001):
    """A counter that advances with time (idle power) and with each call of the returned fn."""
    state = {"calls": 0}
    t0 = time.perf_counter()

    def read() -> int:
        uj = int(idle_w * (time.perf_counter() - t0) * 1e6) + state["calls"] * uj_per_call
        return uj % (max_uj + 1) if max_uj else uj

    def fn():
        state["calls"] += 1
        time.sleep(0.001)

    return energy.PowerSource("fake", "measured", read, max_uj=max_uj, update_s=update_s, why="test counter"), fn


@pytest.mark.parametrize("max_uj", [None, 900_000])  # the second wraps several times during the run
def test_measured_energy_subtracts_idle_and_survives_wraparound(max_uj):
    src, fn = _fake_counter(idle_w=2.0, uj_per_call=5_000, max_uj=max_uj)
    r = energy.measure_energy(fn, source=src, chunks=4, min_window_s=0.4, idle_s=0.2)
    assert r.kind == "measured" and r.source == "fake"
    assert r.millijoules == pytest.approx(5.0, rel=0.1)  # 5 mJ per call above the 2 W idle
    assert r.idle_power_w == pytest.approx(2.0, rel=0.1)
    assert r.inferences_per_joule == pytest.approx(200, rel=0.1)
    assert len(r.joules_per_inference_chunks) == 4
    assert "MEASURED via fake" in str(r)


def test_delta_handles_wrap_and_refuses_backwards_counter_without_range():
    src = energy.PowerSource("x", "measured", lambda: 0, max_uj=999)
    assert src.delta_uj(990, 5) == 15
    with pytest.raises(ValueError, match="went backwards"):
        energy.PowerSource("x", "measured", lambda: 0).delta_uj(10, 5)


def test_too_short_window_is_refused_and_short_run_warned():
    src, fn = _fake_counter(1.0, 1000, None, update_s=0.1)
    with pytest.raises(ValueError, match="shorter than 10 updates"):
        energy.measure_energy(fn, source=src, chunks=5, min_window_s=0.5, idle_s=2.0)
    src, fn = _fake_counter(1.0, 1000, None, update_s=0.001)
    r = energy.measure_energy(fn, source=src, chunks=2, min_window_s=0.2, idle_s=0.05)
    assert any("under a second" in w for w in r.warnings)


def _rapl_tree(root, uj=(1000, 50, 70, 300), rng=262143328850):
    for name, label, value in (("intel-rapl:0", "package-0", uj[0]), ("intel-rapl:0:0", "core", uj[1]),
                               ("intel-rapl:0:1", "uncore", uj[2]), ("intel-rapl:0:2", "dram", uj[3])):
        d = root / name
        d.mkdir()
        (d / "name").write_text(label + "\n")
        (d / "energy_uj").write_text(f"{value}\n")
        (d / "max_energy_range_uj").write_text(f"{rng}\n")


def test_rapl_sums_package_and_dram_not_subdomains(tmp_path):
    _rapl_tree(tmp_path)
    src = energy.rapl_source(tmp_path)
    assert src.kind == "measured" and src.read_uj() == 1000 + 300  # core and uncore are inside the package
    assert "intel-rapl:0:2" in src.why and "intel-rapl:0:0" not in src.why
    assert src.max_uj == 262143328850


def test_rapl_unreadable_or_missing_says_why(tmp_path):
    with pytest.raises(ValueError, match="no powercap interface"):
        energy.rapl_source(tmp_path / "absent")
    d = tmp_path / "intel-rapl:0"
    d.mkdir()
    (d / "energy_uj").mkdir()  # unreadable as a file
    (d / "max_energy_range_uj").write_text("100\n")
    with pytest.raises(ValueError, match="not readable"):
        energy.rapl_source(tmp_path)


def test_nvml_path_with_a_fake_driver(monkeypatch):
    fake = types.ModuleType("pynvml")
    fake.NVMLError = type("NVMLError", (Exception,), {})
    fake.nvmlInit = lambda: None
    fake.nvmlDeviceGetHandleByIndex = lambda i: f"gpu{i}"
    fake.nvmlDeviceGetTotalEnergyConsumption = lambda h: 1234  # mJ
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    src = energy.nvml_source(0)
    assert src.kind == "measured" and src.read_uj() == 1_234_000
    assert energy.pick_source().name == "nvml"


def test_this_machine_estimate_is_labelled(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # as if not installed
    src = energy.pick_source()
    if src.kind == "estimated":
        assert "no energy counter readable" in src.why
    r = energy.measure_energy(lambda: sum(range(20000)), source=energy.estimate_source(tdp_w=20, idle_w=4),
                              chunks=2, min_window_s=0.3, idle_s=0.2)
    assert r.kind == "estimated" and r.joules_per_inference > 0
    assert 4 <= r.active_power_w <= 20 and "ESTIMATED" in str(r)
    assert any("ESTIMATED" in w for w in r.warnings)
    fixed = energy.measure_energy(lambda: time.sleep(0.01), source=energy.estimate_source(device_power_w=3),
                                  chunks=2, min_window_s=0.2, idle_s=0.1)
    assert fixed.millijoules == pytest.approx(3 * 10.1, rel=0.2)  # the source's power x latency


def test_cost_maths():
    b = energy.battery_life(0.01, 4000, 3.85, inferences_per_s=10)
    assert b.battery_j == pytest.approx(4000 * 3.6 * 3.85)
    assert b.inferences_per_charge == pytest.approx(b.battery_j / 0.01)
    assert b.hours_at_rate == pytest.approx(b.battery_j / 0.1 / 3600)
    c = energy.cloud_cost(1000, "g4dn.xlarge (T4)", qps=2500)
    assert c.usd_per_million == pytest.approx(1e6 / 1000 / 3600 * 0.526)
    assert c.instances_for_qps == 3 and c.usd_per_day_for_qps == pytest.approx(3 * 0.526 * 24)
    assert energy.hardware_cost(99, 33) == pytest.approx(3.0)


def test_bad_input():
    with pytest.raises(ValueError, match="device_power_w=-1"):
        energy.estimate_source(device_power_w=-1)
    with pytest.raises(ValueError, match="device_power_w=0"):
        energy.estimate_source(device_power_w=0)
    with pytest.raises(ValueError, match="capacity_mah=0"):
        energy.battery_life(0.01, 0)
    with pytest.raises(ValueError, match="price_per_hour='cheap'"):
        energy.cloud_cost(100, "cheap")
    with pytest.raises(ValueError, match="price_per_hour=nan"):
        energy.cloud_cost(100, math.nan)
    with pytest.raises(ValueError, match="price_per_hour=None"):
        energy.cloud_cost(100, None)

    def boom():
        raise ZeroDivisionError("model exploded")

    with pytest.raises(RuntimeError, match="fn raised.*ZeroDivisionError: model exploded"):
        energy.measure_energy(boom, source=energy.estimate_source(device_power_w=1))
    with pytest.raises(TypeError, match="fn must be callable"):
        energy.measure_energy(42)
    with pytest.raises(ValueError, match="prefer='gpu'"):
        energy.pick_source("gpu")


# ----------------------------------------------------------------------------- first principles (Horowitz 2014)


def test_first_principles_closed_form():
    # 1 M FP32 MACs at 3.7 + 0.9 pJ, 1 MB from DRAM at 640 pJ / 4 bytes, 1 MB from SRAM at 5 pJ / 4 bytes
    e = energy.first_principles(1e6, 1e6, 1e6, "fp32")
    assert e.compute_pj == pytest.approx(4.6e6)
    assert e.dram_pj == pytest.approx(160e6)
    assert e.sram_pj == pytest.approx(1.25e6)
    assert e.total_pj == pytest.approx(4.6e6 + 160e6 + 1.25e6)
    assert e.total_j == pytest.approx(e.total_pj * 1e-12) and e.millijoules == pytest.approx(e.total_pj * 1e-9)
    assert e.movement_share == pytest.approx((160e6 + 1.25e6) / e.total_pj)
    # INT8: an 8-bit multiply (0.2 pJ) accumulated in 32 bits (0.1 pJ); FP16: 1.1 + 0.4 pJ
    assert energy.first_principles(1e6, 0, precision="int8").compute_pj == pytest.approx(0.3e6)
    assert energy.first_principles(1e6, 0, precision="fp16").compute_pj == pytest.approx(1.5e6)
    # the paper's headline: one 32-bit DRAM read costs as much as about 140 FP32 multiply-adds
    assert energy.DRAM_PJ_PER_BYTE * 4 / energy.MAC_PJ["fp32"] == pytest.approx(139, rel=0.01)
    assert energy.HOROWITZ_PJ["dram read 32 bit"] / energy.HOROWITZ_PJ["sram read 32 bit (8 KB)"] == 128
    d = e.as_dict()
    assert d["total_pj"] == pytest.approx(e.total_pj) and d["precision"] == "fp32"
    assert "FIRST PRINCIPLES" in str(e) and "moving data" in str(e)
    assert energy.first_principles(0, 0).movement_share == 0.0


class _Cost:  # the fields of mclab.flops.CostReport that first_principles_of reads
    def __init__(self, macs, params, activation_bytes, batch):
        self.macs, self.params, self.activation_bytes = macs, params, activation_bytes
        self.input_shape = (batch, 1, 8, 8)


def test_first_principles_of_a_counted_model_per_image():
    cost = _Cost(macs=2_000_000, params=1000, activation_bytes=8000, batch=2)  # counted at batch 2
    e = energy.first_principles_of(cost, "fp32")
    assert e.macs == 1_000_000                         # per image
    assert e.bytes_dram == pytest.approx(1000 * 4 / 2)  # weights shared by the 2 images of the call
    assert e.bytes_sram == pytest.approx(2 * 4000)      # 4,000 activation bytes per image, written and read
    i8 = energy.first_principles_of(cost, "int8", batch=1)
    assert i8.bytes_dram == pytest.approx(1000) and i8.bytes_sram == pytest.approx(2 * 1000)
    assert i8.compute_pj == pytest.approx(1e6 * 0.3)
    spill = energy.first_principles_of(cost, "fp32", batch=1, activations="dram")
    assert spill.bytes_sram == 0 and spill.bytes_dram == pytest.approx(4000 + 8000)
    assert spill.total_pj > energy.first_principles_of(cost, "fp32", batch=1).total_pj


def test_first_principles_of_real_count():
    torch = pytest.importorskip("torch")
    from mclab import flops

    lin = torch.nn.Linear(64, 32).eval()
    cost = flops.count(lin, torch.zeros(4, 64))
    e = energy.first_principles_of(cost, "fp32", batch=1)
    assert e.macs == 64 * 32 and e.bytes_dram == (64 * 32 + 32) * 4
    assert e.compute_pj == pytest.approx(64 * 32 * 4.6)


def test_first_principles_bad_input():
    with pytest.raises(ValueError, match="precision='bf16'.*allowed"):
        energy.first_principles(1, 1, precision="bf16")
    with pytest.raises(ValueError, match="macs=-1"):
        energy.first_principles(-1, 0)
    with pytest.raises(ValueError, match="bytes_dram=nan"):
        energy.first_principles(1, math.nan)
    with pytest.raises(ValueError, match="bytes_sram='x'"):
        energy.first_principles(1, 0, "x")
    cost = _Cost(1, 1, 1, 1)
    with pytest.raises(ValueError, match="batch=0"):
        energy.first_principles_of(cost, batch=0)
    with pytest.raises(ValueError, match="activations='l2'"):
        energy.first_principles_of(cost, activations="l2")
    with pytest.raises(TypeError, match="CostReport"):
        energy.first_principles_of(42)

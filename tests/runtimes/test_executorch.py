"""mclab.runtimes.executorch: a module exported to an ExecuTorch ``.pte`` (XNNPACK delegate) at FP32 and INT8.

References are PyTorch eager outputs of the same weights on the same inputs: FP32 must agree to 1e-4 max
absolute error; INT8 (PT2E, XNNPACK quantizer) must differ measurably but pick the same class almost always."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from mclab import runtimes
from mclab.runtimes import executorch as ret

pytest.importorskip("executorch.runtime")

SHAPE = (3, 16, 16)  # the toy CNN's input (conftest)


@pytest.fixture(scope="module")
def pte_files(tmp_path_factory, toy_cnn):
    """The toy CNN as .pte files at FP32 and INT8 (batch 2; INT8 calibrated on 8 given random batches of 4,
    through a graph exported with a dynamic batch)."""
    m = toy_cnn()
    d = tmp_path_factory.mktemp("pte")
    rng = np.random.default_rng(1)
    example = rng.standard_normal((2, *SHAPE), dtype=np.float32)
    cal = [rng.standard_normal((4, *SHAPE), dtype=np.float32) for _ in range(8)]
    facts = {"fp32": ret.build_pte(m, example, d / "toy_fp32.pte", "fp32"),
             "int8": ret.build_pte(m, example, d / "toy_int8.pte", "int8", calibration=cal)}
    return m, facts


def test_fp32_matches_eager_and_delegates_to_xnnpack(pte_files, x, reference):
    m, facts = pte_files
    r = ret.runner_for_file(facts["fp32"].path)
    assert r.runtime == "executorch" and r.precision == "fp32" and r.input_shape == (2, *SHAPE)
    assert np.abs(r.run(x) - reference(m, x)).max() < 1e-4
    d = facts["fp32"].delegation
    assert d["backend"] == "XnnpackBackend" and d["subgraphs"] >= 1 and d["delegated_nodes"] > 5
    # everything but the getitem that unpacks the delegate's output runs inside XNNPACK
    assert set(d["non_delegated_ops"]) <= {"getitem"}
    assert r.info["file"]["delegate_calls"] == {"XnnpackBackend": d["subgraphs"]}
    assert r.size_bytes == os.path.getsize(facts["fp32"].path)


def test_int8_runs_and_agrees_with_fp32_on_top1(pte_files, reference):
    m, facts = pte_files
    cal = facts["int8"].calibration
    assert cal["data"] == "given batches" and cal["batches"] == 8 and cal["images"] == 32
    assert facts["fp32"].calibration is None
    r = ret.runner_for_file(facts["int8"].path)
    assert r.precision == "int8"
    xs = np.random.default_rng(2).standard_normal((64, 2, *SHAPE), dtype=np.float32)
    got = np.concatenate([r.run(b) for b in xs])
    ref = np.concatenate([reference(m, b) for b in xs])
    assert np.abs(got - ref).max() > 1e-4, "static INT8 cannot be bit-exact with FP32"
    agree = float((got.argmax(1) == ref.argmax(1)).mean())
    assert agree >= 0.9, f"INT8 and FP32 pick the same class on only {agree:.0%} of 128 inputs"
    # the int8 graph has quantize/dequantize nodes and is still delegated whole
    assert facts["int8"].delegation["delegated_nodes"] > facts["fp32"].delegation["delegated_nodes"]


def test_load_builds_from_a_module_and_records_calibration(toy_cnn, x, reference):
    m = toy_cnn()
    r = runtimes.load(m, "executorch", batch=2, input_shape=SHAPE)
    assert r.precision == r.requested == "fp32" and np.abs(r.run(x) - reference(m, x)).max() < 1e-4
    q = runtimes.load(m, "executorch", batch=2, input_shape=SHAPE, precision="int8")
    assert q.precision == "int8" and q.info["calibration"]["data"] == "random N(0, 1), seed 0"
    assert q.info["calibration"]["batches"] == 8 and q.info["delegation"]["subgraphs"] >= 1


def test_pte_file_through_load(pte_files, x):
    _, facts = pte_files
    path = facts["int8"].path
    r = runtimes.load(path, "executorch", batch=2, input_shape=SHAPE)
    assert r.precision == "int8" and r.file == path and r.info["delegation"] is None  # not in the file
    assert runtimes.load(path, "executorch", batch=2, precision="int8").precision == "int8"
    assert runtimes.load(path, "executorch", batch=2, precision="fp32").precision == "int8"  # files run as built
    assert runtimes.load(path, "executorch", batch=2, precision="default").precision == "int8"
    with pytest.raises(ValueError, match="precision='int8' does not match"):
        runtimes.load(facts["fp32"].path, "executorch", batch=2, precision="int8")


def test_bad_inputs(tmp_path, pte_files, x, toy_cnn):
    _, facts = pte_files
    good = facts["fp32"].path
    with pytest.raises(ValueError, match="does not exist"):
        runtimes.load(str(tmp_path / "missing.pte"), "executorch")
    for name, data, why in (("cut.pte", open(good, "rb").read()[:500], "is cut short"),
                            ("junk.pte", b"not a program" * 40, "is not an ExecuTorch program")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}' {why}"):
            runtimes.load(str(tmp_path / name), "executorch", batch=2)
    with pytest.raises(ValueError, match=r"input_shape=\(3, 8, 8\) does not fit"):
        runtimes.load(good, "executorch", batch=2, input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="batch=1 does not fit"):
        runtimes.load(good, "executorch", batch=1)
    with pytest.raises(ValueError, match=r"precision='bf16' is not supported by runtime='executorch'.*'fp32', 'int8'"):
        runtimes.load(good, "executorch", batch=2, precision="bf16")
    with pytest.raises(ValueError, match="precision='fp16'"):
        ret.build_pte(toy_cnn(), x, tmp_path / "x.pte", "fp16")
    with pytest.raises(ValueError, match=r"calibration batch of shape \(2, 3, 8, 8\)"):
        ret.build_pte(toy_cnn(), x, tmp_path / "x.pte", "int8", calibration=[x[:, :, :8, :8]])
    with pytest.raises(ValueError, match=r"cannot export .*check input_shape"):
        runtimes.load(toy_cnn(), "executorch", input_shape=(1, 16, 16))  # 1 channel into a 3-channel conv
    r = ret.runner_for_file(good)
    with pytest.raises(ValueError, match="shape"):
        r.run(x[:1])
    with pytest.raises(ValueError, match="float32"):
        r.run(x.astype(np.float64))


def test_threads_pool_is_process_wide(pte_files):
    _, facts = pte_files
    r = ret.runner_for_file(facts["fp32"].path)
    now = r.threads
    assert r.info["threads"]["size"] == now >= 1
    assert ret.runner_for_file(facts["fp32"].path, threads=now).threads == now
    with pytest.raises(ValueError, match="process-wide"):  # resizing under a live runner would crash XNNPACK
        ret.runner_for_file(facts["fp32"].path, threads=now + 1)


def test_available_and_missing_package(monkeypatch):
    ok, version = runtimes.available("executorch")
    assert ok and version.startswith("1."), version
    monkeypatch.setitem(sys.modules, "executorch.runtime", None)  # as if the package (or its extension) were gone
    ok, why = runtimes.available("executorch")
    assert not ok and "executorch" in why and "not installed" in why
    with pytest.raises(ValueError, match="runtime='executorch' is not available"):
        runtimes.load("resnet18", "executorch")


def test_listed_in_the_registry():
    assert runtimes.precisions("executorch") == ("fp32", "int8")
    assert runtimes.RUNTIMES["executorch"].module == "mclab.runtimes.executorch"


def test_delegate_knob_none_runs_portable_kernels(toy_cnn, x, reference):
    m = toy_cnn()
    r = runtimes.load(m, "executorch", batch=2, input_shape=SHAPE, delegate="none")
    assert r.info["delegate"] == "none" and r.info["delegation"]["subgraphs"] == 0
    assert np.abs(r.run(x) - reference(m, x)).max() < 1e-4
    with pytest.raises(ValueError, match="delegate='cuda'"):
        runtimes.load(m, "executorch", input_shape=SHAPE, delegate="cuda")

"""A runtime is a plug-in: a module plus one Spec line in the registry, and every part of the kit finds it.

A toy runtime is written and registered here, in the test, and shows up in ``mclab doctor``, ``compare_runtimes``,
``mclab bench``, the profiler, ``int8_op_counts`` and file loading, with no other file touched. Then every registered
runtime that reads model files gets random bytes and a valid file cut in half: each is a ``ValueError`` naming the
file, in this process (ExecuTorch's loader used to abort the interpreter)."""
from __future__ import annotations

import json
import os
import re
import shutil
import textwrap

import numpy as np
import pytest
import torch

from mclab import cli, hw, runtimes
from mclab.runtimes import RUNTIMES, Spec, profile

TOY = textwrap.dedent('''
    """A toy runtime: PyTorch eager under another name, files are .toy (torch.save of a module)."""
    import os

    from mclab.runtimes.base import Runner, resolve

    BUILT = []  # what build() was asked for, read back by the test


    def build(model, *, batch, threads, input_shape, precision="fp32"):
        import torch

        BUILT.append((model if isinstance(model, str) else type(model).__name__, precision))
        if isinstance(model, str) and model.endswith(".toy"):
            module, label, shape = torch.load(model, weights_only=False), model, tuple(input_shape)
        else:
            res = resolve(model, input_shape)
            module, label, shape = res.module.eval(), res.label, res.input_shape

        def run(x):
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        return Runner(label, "toy", (batch, *shape), "fp32", threads, run, file=model if isinstance(model, str)
                      and os.path.isfile(model) else None, info={"toy": True})


    def probe():
        return {"version": "0.0.1-toy", "devices": ["CPU"], "details": {"num_threads": 1}}


    def check_file(path):
        with open(path, "rb") as f:
            if f.read(2) != b"PK":  # torch.save writes a zip archive
                raise ValueError(f"model file {str(path)!r} is not a toy model (no zip header)")


    def op_counts(runner):
        return {"Toy": 1}
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_rt.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")  # doctor's child
    monkeypatch.setitem(RUNTIMES, "toy", Spec("toy_rt", "numpy", ("fp32",), (".toy",), install="write toy_rt.py"))
    import toy_rt

    toy_rt.BUILT.clear()
    return toy_rt


def test_a_toy_runtime_registered_in_the_test_appears_everywhere(toy, tiny_module, tmp_path, capsys):
    # the registry itself
    assert runtimes.available("toy") == (True, np.__version__) and runtimes.precisions("toy") == ("fp32",)
    assert runtimes.runtimes_for_file("m.toy") == ["toy"] and ".toy" in runtimes.model_suffixes()
    assert runtimes.provides("toy", "op_counts") and not runtimes.provides("toy", "profile")
    # mclab doctor: probed in a fresh interpreter with the plug-in's probe()
    info = hw.doctor(runtimes=["toy"]).runtime("toy")
    assert info.available and info.version == "0.0.1-toy" and info.details["num_threads"] == 1
    # compare_runtimes: one row per target, timed and checked against the first
    m = tiny_module()
    cmp = runtimes.compare_runtimes(m, runtimes.CompareConfig(targets=("torch", "toy"), input_shape=(3, 16, 16),
                                                              threads=1, rounds=2, calls_per_round=2, warmup=1))
    row = cmp.row("toy")
    assert row.status == "ok" and row.p50_ms > 0 and row.max_abs_err < 1e-5 and ("Sequential", "fp32") in toy.BUILT
    # mclab bench: a model file of its format is routed to it by suffix, and check_file vets it first
    path = tmp_path / "tiny.toy"
    torch.save(m, path)
    assert cli.main(["bench", str(path), "--input-shape", "3,16,16", "--iters", "5", "--min-time", "0.01",
                     "--warmup", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runtime"] == "toy" and out["info"] == {"toy": True} and out["p50_ms"] > 0
    (tmp_path / "bad.toy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.toy' is not a toy model"):
        runtimes.load(str(tmp_path / "bad.toy"), "toy", input_shape=(3, 16, 16))
    with pytest.raises(ValueError, match="runtime='onnxruntime' does not read.*runtimes that read it: \\['toy'\\]"):
        runtimes.load(str(path), "onnxruntime")
    # the profiler and the op read-back ask the plug-in; without a profiler it is timed as one program
    r = runtimes.load(str(path), "toy", input_shape=(3, 16, 16))
    assert runtimes.int8_op_counts(r) == {"Toy": 1}
    p = profile.profile(r, runs=3, warmup=1)
    assert p.profiler == "wall clock only" and p.ops[0].op == "(whole program)" and p.total_ms > 0


def test_a_runtime_without_op_read_back_says_which_have_one(tiny_module):
    r = runtimes.load(tiny_module(), "torch", input_shape=(3, 16, 16))
    with pytest.raises(ValueError, match="runner.runtime='torch' cannot read back.*'onnxruntime', 'openvino'"):
        runtimes.int8_op_counts(r)


# ----------------------------------------------------------------------------- corrupt files, every runtime


def _valid_file(runtime: str, module: torch.nn.Module, tmp_path) -> str:
    """A real model file of ``runtime``'s own format, written by the kit's converters."""
    from mclab.runtimes import export

    onnx_path = export.export_onnx(module, str(tmp_path / "m.onnx"), export.ExportConfig(input_shape=(3, 16, 16),
                                                                                        verify=False)).path
    if runtime in ("onnxruntime", "tensorrt"):
        return onnx_path if runtime == "onnxruntime" else pytest.skip("TensorRT engines need a CUDA GPU")
    if runtime == "openvino":
        from mclab.runtimes import openvino

        return openvino.to_ir(onnx_path, str(tmp_path / "m.xml"))["xml"]
    r = runtimes.load(module, runtime, input_shape=(3, 16, 16))  # tflite, ncnn, executorch write one
    assert r.file and r.file.endswith(RUNTIMES[runtime].suffixes), r.file
    suffix = next(s for s in RUNTIMES[runtime].suffixes if r.file.endswith(s))
    for s in (suffix, *RUNTIMES[runtime].sidecars):  # copied: the runner deletes its folder when it goes
        shutil.copy(r.file[: -len(suffix)] + s, tmp_path / f"model{s}")
    return str(tmp_path / f"model{suffix}")


FILE_RUNTIMES = [k for k, v in RUNTIMES.items() if v.suffixes]


@pytest.mark.parametrize("runtime", FILE_RUNTIMES)
def test_random_bytes_and_a_cut_file_are_value_errors_in_this_process(runtime, tiny_module, tmp_path):
    ok, why = runtimes.available(runtime)
    if not ok:
        pytest.skip(f"{runtime} is not available here: {why}")
    suffix = RUNTIMES[runtime].suffixes[0]
    noise = tmp_path / f"noise{suffix}"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="noise"):
        runtimes.load(str(noise), runtime, input_shape=(3, 16, 16))
    valid = _valid_file(runtime, tiny_module(), tmp_path)
    files = [valid] + [valid[: -len(suffix)] + s for s in RUNTIMES[runtime].sidecars]  # cut the model, then its .bin
    for f in files:
        whole = open(f, "rb").read()
        with open(f, "wb") as out:
            out.write(whole[: len(whole) // 2])
        with pytest.raises(ValueError, match=re.escape(os.path.basename(f))):
            runtimes.load(valid, runtime, input_shape=(3, 16, 16))
        with open(f, "wb") as out:
            out.write(whole)


@pytest.mark.parametrize("runtime", FILE_RUNTIMES)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_what_a_build_writes_goes_with_its_runner(runtime, precision, tiny_module, tmp_path, monkeypatch):
    """A module built for a runtime is written to a temporary folder (ONNX, NCNN's pnnx files, .pte, INT8 files):
    when the runner is gone, so is the folder. TFLite converts into one folder per process instead (it reuses a
    conversion of the same weights), removed at exit; TensorFlow removes its ``__autograph_generated_file*`` at exit."""
    import gc
    import tempfile

    from mclab.runtimes import export, tflite

    ok, why = runtimes.available(runtime)
    if not ok:
        pytest.skip(f"{runtime} is not available here: {why}")
    shared = export.process_folder(tflite.CONVERSIONS)  # made before the patch: it stays in the usual temporary folder
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        r = runtimes.load(tiny_module(), runtime, input_shape=(3, 16, 16), precision=precision)
    except ValueError as e:  # a precision this runtime does not offer
        assert not os.listdir(tmp_path), f"{runtime} left {os.listdir(tmp_path)} after refusing: {e}"
        return
    r.run(np.zeros((1, 3, 16, 16), np.float32))
    where = shared if runtime == "tflite" else str(tmp_path)
    assert r.file and r.file.startswith(where + os.sep), f"{runtime} wrote {r.file}, not into {where}"
    del r
    gc.collect()
    with pytest.raises(ValueError):  # a build that fails part-way (4 channels into a 3-channel conv) keeps nothing
        runtimes.load(tiny_module(), runtime, input_shape=(4, 16, 16), precision=precision)
    left = {f for f in os.listdir(tmp_path) if not f.startswith("__autograph_generated_file")}
    assert not left, f"{runtime} {precision}: {sorted(left)} stayed after its runner was gone or its build failed"

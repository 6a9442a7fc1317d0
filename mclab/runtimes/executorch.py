"""ExecuTorch: PyTorch's on-device runtime (the successor of PyTorch Mobile), on its XNNPACK CPU backend.

A model is captured with ``torch.export``, lowered with ``to_edge_transform_and_lower(...,
partitioner=[XnnpackPartitioner()])`` (XNNPACK takes the subgraphs it supports; the rest stays on
ExecuTorch's portable kernels) and serialised with ``.to_executorch()`` into a ``.pte`` file, which
ExecuTorch's Python runtime (``executorch.runtime.Runtime``) loads and runs. :func:`build_pte` writes a
``.pte`` (``precision="int8"``: PT2E static quantisation with the XNNPACK quantizer, symmetric INT8 with
per-channel weights, calibrated on the batches given or on 8 random N(0, 1) batches, seed 0);
:func:`runner_for_file` runs one; :func:`build` is this runtime's entry in :data:`mclab.runtimes.RUNTIMES`.

Threads: XNNPACK runs on ExecuTorch's one process-wide thread pool (by default one thread per core). The
Python runtime offers no per-program setting; ``threads=`` resizes that pool with the experimental
``portable_lib._unsafe_reset_threadpool`` before a program loads. XNNPACK keeps the pool it started with, so
the size cannot change while another executorch runner is alive (``ValueError``): all executorch runners in
one process share one thread count (``Runner.info["threads"]`` says how it was set). Introduced in notebook 11.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import weakref
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator

from .base import RANDOM_CALIBRATION, Runner, random_batches, resolve

__all__ = [
    # writing and reading .pte files
    "build_pte", "PTEFacts", "delegation", "file_facts", "runner_for_file",
    # this runtime's plug-in functions (mclab.runtimes.base)
    "KNOBS", "DELEGATES", "build", "available", "import_framework", "probe", "check_file",
]

_MARKER = "mclab_precision"             # a constant method build_pte writes into the .pte: 32 (fp32) or 8 (int8)
_CODES = {"fp32": 32, "int8": 8}
DELEGATES = ("xnnpack", "none")         # lower to XNNPACK, or leave every operator on ExecuTorch's portable kernels

# Settings of :func:`build` (:func:`mclab.runtimes.audit.audit_defaults` sweeps them; the default first):
# ``delegate="none"`` keeps the whole graph on the portable kernels (reference C++ loops: the same answer up to
# rounding at FP32, and at INT8 only where this build registers the quantized operators).
KNOBS: dict[str, tuple] = {"delegate": DELEGATES}


def import_framework() -> Any:
    """Import ExecuTorch's Python runtime (ImportError where the package or its prebuilt extension is missing)
    and return ``executorch.version``, which carries ``__version__`` (the ``executorch`` namespace does not)."""
    import executorch.runtime  # noqa: F401 — fails here when the prebuilt runtime extension is missing
    from executorch import version

    return version


def _runtime() -> Any:
    import executorch.runtime as rt

    return rt.Runtime.get()


def available() -> tuple[bool, str]:
    """(True, version) when ExecuTorch's runtime imports and has the XNNPACK backend."""
    try:
        version = import_framework()
    except ImportError as e:
        return False, f"executorch is not installed or its runtime extension is missing ({e})"
    if not _runtime().backend_registry.is_available("XnnpackBackend"):
        return False, "this executorch build has no XnnpackBackend"
    return True, getattr(version, "__version__", "?")


# ----------------------------------------------------------------------------- module -> .pte


def _batches(calibration: Any, shape: tuple[int, ...]) -> tuple[list[Any], str]:
    """Calibration batches as torch tensors and a description of where they came from."""
    import numpy as np
    import torch

    if calibration is None:
        return [torch.from_numpy(b) for b in random_batches(shape)], RANDOM_CALIBRATION["data"]
    n = RANDOM_CALIBRATION["batches"]
    items = [calibration(i) for i in range(n)] if callable(calibration) else list(calibration)
    if not items:
        raise ValueError("calibration= is empty; pass batches (tensors or arrays) or leave it None")
    return [torch.as_tensor(np.asarray(b, dtype=np.float32)) for b in items], "given batches"


def delegation(edge_graph_module: Any) -> dict[str, Any]:
    """What XNNPACK took from a lowered graph (``edge.exported_program().graph_module``): ExecuTorch's
    ``get_delegation_info`` as a dict — delegated subgraphs, delegated and non-delegated nodes, and per
    operator the nodes left to ExecuTorch's portable kernels (``getitem`` of the delegate's outputs counts)."""
    from executorch.devtools.backend_debug import get_delegation_info

    d = get_delegation_info(edge_graph_module)
    return {"backend": "XnnpackBackend", "subgraphs": d.num_delegated_subgraphs,
            "delegated_nodes": d.num_delegated_nodes, "non_delegated_nodes": d.num_non_delegated_nodes,
            "non_delegated_ops": {k: v.non_delegated for k, v in sorted(d.delegation_by_operator.items())
                                  if v.non_delegated}}


@dataclass
class PTEFacts:
    """What :func:`build_pte` wrote: the ``.pte`` file, its precision, the calibration and what XNNPACK took."""

    path: str
    precision: str                        # "fp32" or "int8"
    calibration: dict[str, Any] | None    # data, batches, images, scheme (None for fp32)
    delegation: dict[str, Any]            # delegation(): nodes XNNPACK took and the operators left to ExecuTorch

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_pte(module: Any, example: Any, path: str | os.PathLike, precision: str = "fp32",
              calibration: Iterable[Any] | Callable[[int], Any] | None = None, delegate: str = "xnnpack") -> PTEFacts:
    """Export ``module`` on ``example`` (one NCHW batch; its shape is the file's fixed input shape), lower it
    to XNNPACK and write a ``.pte`` to ``path``. ``precision="int8"`` quantises first with PT2E
    (``prepare_pt2e`` -> calibration -> ``convert_pt2e``, XNNPACK quantizer, symmetric per-channel INT8),
    calibrated on ``calibration`` (batches of any size, or ``calibration(i)`` for i < 8; the observers run on a
    graph exported for the batches' size, with a dynamic batch if sizes differ) or else on 8 random N(0, 1)
    batches of ``example``'s shape, seed 0. ``delegate="none"`` skips the XNNPACK partitioner (:data:`DELEGATES`).
    Returns a :class:`PTEFacts`: path, precision, calibration and delegation
    (:func:`delegation`)."""
    import numpy as np
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    if precision not in _CODES:
        raise ValueError(f"precision={precision!r} is not offered by ExecuTorch here; allowed: {list(_CODES)}")
    if delegate not in DELEGATES:
        raise ValueError(f"delegate={delegate!r}; allowed: {list(DELEGATES)}")
    x = torch.as_tensor(np.asarray(example, dtype=np.float32))
    module = module.eval()
    try:
        ep = torch.export.export(module, (x,))
    except Exception as e:  # torch.export raises many types (shape mismatches, untraceable code)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"cannot export {type(module).__name__} on an input of shape {tuple(x.shape)} "
                         f"(check input_shape): {type(e).__name__}: {first}") from None
    calib: dict[str, Any] | None = None
    if precision == "int8":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        batches, source = _batches(calibration, tuple(x.shape))
        bad = [tuple(b.shape) for b in batches if tuple(b.shape[1:]) != tuple(x.shape[1:]) or not len(b)]
        if bad:
            raise ValueError(f"calibration batch of shape {bad[0]}; the model takes (N, *{tuple(x.shape[1:])})")
        sizes = {len(b) for b in batches}
        cal_ep = ep
        if sizes != {len(x)}:  # calibrate whole batches: the observers run on a graph exported for their size
            big = max(batches, key=len)
            dyn = None if len(sizes) == 1 else ({0: torch.export.Dim.DYNAMIC},)
            try:
                cal_ep = torch.export.export(module, (big,), dynamic_shapes=dyn)
            except Exception as e:  # a model whose graph fixes the batch
                raise ValueError(f"calibration batches of sizes {sorted(sizes)} do not export for this model "
                                 f"({type(e).__name__}); give batches of {len(x)}, the example's size") from None
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(cal_ep.module(), quantizer)
        with torch.no_grad():
            for b in batches:
                prepared(b)
        ep = torch.export.export(convert_pt2e(prepared), (x,))
        calib = {"data": source, "batches": len(batches), "images": int(sum(len(b) for b in batches)),
                 "scheme": "PT2E, XNNPACKQuantizer, symmetric INT8, per-channel weights"}
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()] if delegate == "xnnpack" else [],
                                       constant_methods={_MARKER: _CODES[precision]})
    facts = PTEFacts(os.fspath(path), precision, calib, delegation(edge.exported_program().graph_module))
    program = edge.to_executorch()
    with open(path, "wb") as f:
        f.write(program.buffer)
    return facts


# ----------------------------------------------------------------------------- running .pte files


def file_facts(path: str | os.PathLike) -> dict[str, Any]:
    """What a ``.pte`` file's forward plan calls, read from the file: delegate calls per backend and the
    operators left to ExecuTorch's own kernels (``None`` where this version cannot read the file back)."""
    try:
        from executorch.exir._serialize._program import deserialize_pte_binary  # private, but the only reader

        with open(path, "rb") as f:
            plan = next(p for p in deserialize_pte_binary(f.read()).program.execution_plan if p.name == "forward")
    except Exception:  # a file this reader does not understand: the runtime may still run it
        return {"delegate_calls": None, "kernel_ops": None}
    calls: dict[str, int] = {}
    kernel_ops: dict[str, int] = {}
    for chain in plan.chains:
        for ins in chain.instructions:
            kind = type(ins.instr_args).__name__
            if kind == "DelegateCall":
                backend = plan.delegates[ins.instr_args.delegate_index].id
                calls[backend] = calls.get(backend, 0) + 1
            elif kind == "KernelCall":
                op = plan.operators[ins.instr_args.op_index]
                name = f"{op.name}.{op.overload}" if op.overload else op.name
                kernel_ops[name] = kernel_ops.get(name, 0) + 1
    return {"delegate_calls": calls, "kernel_ops": kernel_ops}


_IDENTIFIER = re.compile(rb"ET\d\d")  # the flatbuffer file identifier at bytes 4..8 ("ET12" for this schema)
_EXTENDED = b"eh00"                      # the extended header at bytes 8..: sizes of the program and its segments


def check_file(path: str | os.PathLike) -> None:
    """``ValueError`` naming ``path`` unless it looks like a whole ``.pte``: the ExecuTorch file identifier, its
    extended header, and as many bytes as that header says the program and its data segments take. ExecuTorch's
    C++ loader calls ``terminate`` (the process aborts, exit 134) on some corrupt or truncated files, so this runs
    before every load (:func:`runner_for_file`, ``mclab.runtimes.load``)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(40)
    if len(head) < 40 or not _IDENTIFIER.fullmatch(head[4:8]) or head[8:12] != _EXTENDED:
        raise ValueError(f"model file {path!r} is not an ExecuTorch program: it lacks the .pte file identifier "
                         f"(ETnn) and extended header (eh00); is it a file written by to_executorch()?")
    length = int.from_bytes(head[12:16], "little")
    program, base = int.from_bytes(head[16:24], "little"), int.from_bytes(head[24:32], "little")
    segments = int.from_bytes(head[32:40], "little") if length >= 32 else 0
    need = max(program, base + segments if base else 0)
    if need > size:
        raise ValueError(f"model file {path!r} is cut short: its header says {need} bytes (program {program}, "
                         f"segments from {base}, {segments} bytes) and the file holds {size}")


def probe() -> dict[str, Any]:
    """What ``mclab doctor`` shows for ExecuTorch (run in a fresh interpreter): version and backends."""
    version = import_framework()
    return {"version": version.__version__, "devices": ["CPU"],
            "details": {"backends": _runtime().backend_registry.registered_backend_names}}


_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()  # programs loaded by live runners (their XNNPACK uses the pool)


def _threadpool() -> tuple[Callable[[], int], Callable[[int], None]]:
    from executorch.extension.pybindings import portable_lib as pl

    return pl._threadpool_get_thread_count, pl._unsafe_reset_threadpool  # noqa: SLF001 — no public setter


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence stderr for a moment: ExecuTorch's C++ logger writes cpuinfo probing and "Resetting threadpool"
    lines when its pool is created or resized (no Python setting turns them off) — through ``sys.stderr``
    in its Python build (a notebook shows them), to file descriptor 2 otherwise: both are muted."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(io.StringIO()):
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _size_pool(threads: int | None) -> tuple[int, bool]:
    """Size ExecuTorch's process-wide thread pool to ``threads`` before a program is loaded; returns its size.
    XNNPACK keeps the pool it was initialised with, so resizing it under a loaded program crashes the process
    (seen on 1.5.1: a pthread mutex assertion on the next call): a different size while runners are alive is
    a ``ValueError``. Returns (the pool's size, whether this call resized it)."""
    get_threads, set_threads = _threadpool()
    with _quiet_stderr():  # the first call creates the pool
        now = get_threads()
    if threads is None or threads == now:
        return now, False
    if len(_LIVE):
        raise ValueError(f"threads={threads}: ExecuTorch's thread pool is process-wide and {len(_LIVE)} live "
                         f"executorch runner(s) use it at {now} threads; resizing it under them crashes XNNPACK. "
                         f"Pass threads={now} (or None), or delete those runners first")
    with _quiet_stderr():
        set_threads(threads)
    return get_threads(), True


def runner_for_file(path: str | os.PathLike, *, threads: int | None = None, batch: int | None = None,
                    input_shape: tuple[int, ...] | None = None, model: str | None = None,
                    info: dict[str, Any] | None = None) -> Runner:
    """A :class:`Runner` over a ``.pte`` file (input: one float32 NCHW batch of the file's fixed shape).
    ``batch`` / ``input_shape`` (without batch), when given, must match the file. ``threads`` sizes
    ExecuTorch's process-wide pool before loading (see :func:`_size_pool`). A missing or corrupt file
    raises ``ValueError``."""
    import numpy as np
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"model={path!r}: the .pte file does not exist or is not readable")
    check_file(path)  # ExecuTorch's C++ loader aborts the whole process on some corrupt files
    pool, resized = _size_pool(threads)
    try:
        program = _runtime().load_program(path)
        method = program.load_method("forward")
    except (RuntimeError, KeyError) as e:
        raise ValueError(f"model={path!r} cannot be loaded as an ExecuTorch program ({e}); "
                         f"is it a complete .pte written by to_executorch()?") from None
    meta = method.metadata
    if meta.num_inputs() != 1:
        raise ValueError(f"model={path!r} takes {meta.num_inputs()} inputs; this runner feeds one image batch")
    shape = tuple(int(d) for d in meta.input_tensor_meta(0).sizes())
    if batch is not None and shape[0] != batch:
        raise ValueError(f"batch={batch} does not fit {path}: its input shape is fixed at {shape}")
    if input_shape is not None and tuple(input_shape) != shape[1:]:
        raise ValueError(f"input_shape={tuple(input_shape)} does not fit {path}: it takes {shape[1:]} "
                         f"(the full input is {shape}; a .pte has a fixed shape, export it again for another)")
    precision = "unknown"
    if _MARKER in program.method_names:
        code = program.load_method(_MARKER).execute(())[0]
        precision = {v: k for k, v in _CODES.items()}.get(int(code), "unknown")
    _LIVE.add(program)
    call = method._method  # noqa: SLF001 — the pybind method; Method.execute only forwards to it
    from_np = torch.from_numpy

    def run(x: Any) -> Any:
        return call((from_np(np.ascontiguousarray(x)),))[0].numpy()

    thread_note = {"pool": "ExecuTorch's process-wide thread pool (XNNPACK runs on it)", "size": pool,
                   "set_by": ("portable_lib._unsafe_reset_threadpool (experimental), before loading" if resized
                              else "left as it was (one thread per core unless a runner before sized it)")}
    facts = {"version": available()[1], **(info or {}), "file": file_facts(path), "threads": thread_note}
    facts.setdefault("delegation", None)
    facts.setdefault("calibration", None)
    return Runner(model or path, "executorch", shape, precision, pool, run, file=path, info=facts, handle=program)


# ----------------------------------------------------------------------------- registry entry


def build(model: Any, *, batch: int, threads: int | None, input_shape: tuple[int, ...] | None,
          precision: str = "fp32", calibration: Iterable[Any] | Callable[[int], Any] | None = None,
          delegate: str = "xnnpack") -> Runner:
    """Registry entry. A ``.pte`` file runs as it was built: ``precision`` "default" or "fp32" (what
    ``mclab ab`` asks for every file) accept any file, "int8" checks that the file is INT8. A torchvision
    name or a module is written to a temporary ``.pte`` by :func:`build_pte` at ``precision`` ("default" =
    "fp32") and ``delegate`` (:data:`DELEGATES`; a ``.pte`` file keeps the delegation it was built with);
    ``Runner.info`` has ``calibration``, ``delegation`` and ``delegate``."""

    from .export import build_folder, remove_with

    if isinstance(model, str) and model.endswith(".pte"):
        r = runner_for_file(model, threads=threads, batch=batch, input_shape=input_shape)
        if precision == "int8" and r.precision != "int8":
            raise ValueError(f"precision='int8' does not match {model} (it computes in {r.precision}); a .pte "
                             f"cannot be quantised again: build it from the module with precision='int8'")
        return r
    want = "fp32" if precision == "default" else precision
    if want not in _CODES:
        raise ValueError(f"precision={precision!r} is not offered by executorch; allowed: {list(_CODES)} or 'default'")
    res = resolve(model, input_shape)
    shape = (batch, *res.input_shape)
    example = random_batches(shape, 1)[0]
    with build_folder("mclab-executorch-") as tmp:
        path = os.path.join(tmp, f"{os.path.basename(res.label)}_{want}.pte")
        facts = build_pte(res.module, example, path, want, calibration=calibration, delegate=delegate)
        runner = runner_for_file(path, threads=threads, model=res.label,
                                 info={"calibration": facts.calibration, "delegation": facts.delegation,
                                       "delegate": delegate})
    remove_with(runner, tmp)
    return runner

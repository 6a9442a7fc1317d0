"""Data-parallel inference with ``torch.distributed``: one model copy per worker process, the input
split between them, the results gathered back in order. Introduced in notebook 17.

The workers are local processes started with ``spawn`` (the gloo backend on CPU; NCCL when every
worker can have its own GPU), so a notebook can launch them; the same worker function runs across
machines under ``torchrun`` (:func:`torchrun_script`). :func:`model_parallel_plan` is the memory
arithmetic for the other case: a model too large for one device.

Outputs are exact: the input is cut into the same micro-batches as a single-process run, each worker
takes a contiguous block of whole micro-batches, and ``all_gather`` puts them back in rank order, so
every micro-batch meets the same kernels with the same shape as it would in one process.
"""
from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    # configuration and results
    "DistConfig", "DistResult", "ParallelPlan",
    # verbs
    "run_data_parallel", "run_local", "shard_ranges", "model_parallel_plan", "torchrun_script",
]

BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class DistConfig:
    """How to run data-parallel inference."""

    workers: int = 2               # processes; on a 2-core machine more than 2 only adds contention
    threads_per_worker: int = 1    # torch intra-op threads in each worker: workers x threads <= cores is fair
    batch_size: int = 32           # micro-batch every worker runs; fixed so outputs match one process exactly
    backend: str = "auto"          # gloo on CPU, nccl when there is one GPU per worker
    timeout_s: float = 120.0       # a worker that has not finished by then is killed and the run fails

    def __post_init__(self) -> None:
        for name in ("workers", "threads_per_worker", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r} must be an int >= 1")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r}; allowed: {BACKENDS}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s={self.timeout_s!r} must be > 0")


@dataclass
class DistResult:
    """Outputs in input order and where the time went (seconds; wall clock of this machine)."""

    outputs: "torch.Tensor"
    workers: int
    backend: str
    items: int
    wall_s: float                  # launch to results back in the caller: what a user waits for
    startup_s: float               # launch until the slowest worker joined the process group
    compute_s: float               # the slowest worker's inference time
    gather_s: float                # all_gather of the results (rank 0)
    shards: list[tuple[int, int]] = field(default_factory=list)  # [start, stop) rows per rank

    @property
    def throughput_per_s(self) -> float:
        """Items per second of the compute phase alone (startup and gather excluded)."""
        return self.items / self.compute_s

    @property
    def end_to_end_per_s(self) -> float:
        """Items per second including process start, group setup and gather."""
        return self.items / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "outputs"}
        return {**d, "output_shape": list(self.outputs.shape), "throughput_per_s": self.throughput_per_s,
                "end_to_end_per_s": self.end_to_end_per_s}

    def __str__(self) -> str:
        return (f"{self.workers} worker(s), {self.backend}: {self.items} items, compute {self.compute_s:.3f} s "
                f"({self.throughput_per_s:.0f}/s), startup {self.startup_s:.2f} s, "
                f"gather {1e3 * self.gather_s:.1f} ms, wall {self.wall_s:.2f} s "
                f"({self.end_to_end_per_s:.0f}/s end to end)")


# ----------------------------------------------------------------------------- primitives


def shard_ranges(n_items: int, batch_size: int, workers: int) -> list[tuple[int, int]]:
    """[start, stop) rows of each rank: contiguous blocks of whole micro-batches, as even as possible.
    A rank may get an empty range when there are fewer micro-batches than workers."""
    for name, v in (("n_items", n_items), ("batch_size", batch_size), ("workers", workers)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "n_items" else 1):
            raise ValueError(f"{name}={v!r} must be an int >= {0 if name == 'n_items' else 1}")
    n_batches = math.ceil(n_items / batch_size)
    per, extra = divmod(n_batches, workers)
    out, b = [], 0
    for r in range(workers):
        nb = per + (r < extra)
        out.append((min(b * batch_size, n_items), min((b + nb) * batch_size, n_items)))
        b += nb
    return out


def run_local(model: "torch.nn.Module", x: "torch.Tensor", *, batch_size: int = 32,
              threads: int | None = None) -> "torch.Tensor":
    """The single-process reference: ``model`` over ``x`` in micro-batches of ``batch_size``."""
    import torch

    from .bench import set_threads

    _check_inputs(model, x)
    with set_threads(threads), torch.inference_mode():
        outs = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


def _check_inputs(model: Any, x: Any) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or len(x) == 0:
        got = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"x must be a non-empty tensor with a batch dimension, got {got}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend(requested: str, workers: int) -> str:
    import torch

    if requested != "auto":
        if requested == "nccl" and (not torch.cuda.is_available() or torch.cuda.device_count() < workers):
            raise ValueError(f"backend='nccl' needs one GPU per worker: {workers} workers, "
                             f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} GPUs")
        return requested
    return "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= workers else "gloo"


# ----------------------------------------------------------------------------- the worker


def _worker(rank: int, world: int, model: "torch.nn.Module", x: "torch.Tensor", batch_size: int, threads: int,
            backend: str, port: int, out_path: str) -> None:
    """One rank: join the group, run its block of micro-batches, all_gather, rank 0 saves the result.
    ``torchrun_script`` calls the same function with rank and world from the environment."""
    import torch
    import torch.distributed as dist

    t0 = time.time()
    torch.set_num_threads(threads)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(port))
    dist.init_process_group(backend, rank=rank, world_size=world)
    device = torch.device(f"cuda:{rank}") if backend == "nccl" else torch.device("cpu")
    t_init = time.time()
    try:
        shards = shard_ranges(len(x), batch_size, world)
        start, stop = shards[rank]
        model = model.to(device).eval()
        with torch.inference_mode():
            mine = [model(x[i:i + batch_size].to(device)) for i in range(start, stop, batch_size)]
            probe = model(x[:1].to(device))  # the output's trailing shape, for ranks with nothing to do
        local = torch.cat(mine) if mine else probe[:0]
        t_compute = time.time()
        # all_gather needs equal shapes: pad every block to the largest one, trim afterwards
        rows = max(b - a for a, b in shards)
        padded = torch.zeros((rows, *probe.shape[1:]), dtype=probe.dtype, device=device)
        padded[:len(local)] = local
        gathered = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(gathered, padded)
        t_gather = time.time()
        timing = torch.tensor([t0, t_init, t_compute - t_init, t_gather - t_compute], dtype=torch.float64,
                              device=device)
        timings = [torch.empty_like(timing) for _ in range(world)]
        dist.all_gather(timings, timing)  # nccl moves only GPU tensors, so the timings live on `device` too
        if rank == 0:
            blocks = [g[:b - a].cpu() for g, (a, b) in zip(gathered, shards, strict=True)]
            torch.save({"outputs": torch.cat(blocks), "timings": torch.stack([t.cpu() for t in timings])}, out_path)
    finally:
        dist.destroy_process_group()


def run_data_parallel(model: "torch.nn.Module", x: "torch.Tensor", config: DistConfig | None = None) -> DistResult:
    """Run ``model`` over ``x`` in ``config.workers`` local processes (data parallel) and return the
    outputs in input order with the time each phase took. Returns a :class:`DistResult`."""
    import torch
    import torch.multiprocessing as mp

    cfg = config or DistConfig()
    if not isinstance(cfg, DistConfig):
        raise TypeError(f"config must be a DistConfig, got {type(cfg).__name__}")
    _check_inputs(model, x)
    try:  # a model that cannot take x fails here, in the caller, not as a traceback from a child process
        with torch.inference_mode():
            model.eval()(x[:1])
    except (RuntimeError, ValueError, TypeError) as e:
        raise ValueError(f"model cannot run on x of shape {tuple(x.shape)}: {e}") from None
    backend = _backend(cfg.backend, cfg.workers)
    with tempfile.TemporaryDirectory(prefix="mclab-dist-") as tmp:
        out_path = str(Path(tmp) / "result.pt")
        launch = time.time()
        ctx = mp.start_processes(_worker, args=(cfg.workers, model.cpu().eval(), x, cfg.batch_size,
                                                cfg.threads_per_worker, backend, _free_port(), out_path),
                                 nprocs=cfg.workers, join=False, start_method="spawn")
        deadline = time.monotonic() + cfg.timeout_s
        try:
            while not ctx.join(timeout=0.2):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"workers did not finish within timeout_s={cfg.timeout_s} s")
        except mp.ProcessException as e:
            raise RuntimeError(f"a worker process failed ({cfg.workers} workers, {backend}): {e}") from None
        finally:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
                    p.join()
        wall = time.time() - launch
        saved = torch.load(out_path, weights_only=True)
    t = saved["timings"]  # (world, 4): start, joined, compute seconds, gather seconds
    return DistResult(outputs=saved["outputs"], workers=cfg.workers, backend=backend, items=len(x), wall_s=wall,
                      startup_s=float(t[:, 1].max()) - launch, compute_s=float(t[:, 2].max()),
                      gather_s=float(t[0, 3]), shards=shard_ranges(len(x), cfg.batch_size, cfg.workers))


# ----------------------------------------------------------------------------- beyond one machine


def torchrun_script(module_expr: str = "mclab.models.reference()", n_items: int = 1024, batch_size: int = 32) -> str:
    """The text of a script that runs the same worker under ``torchrun`` (one process per rank, on one
    or many machines: ``torchrun --nnodes=2 --nproc-per-node=4 --rdzv-endpoint=HOST:29500 infer.py``).
    Shown in notebook 17, not run there."""
    return f'''"""Data-parallel inference under torchrun: rank and world size come from the environment."""
import os

import torch

import mclab.models
from mclab.distributed import _worker

if __name__ == "__main__":
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    model = {module_expr}
    # every rank builds the same input
    x = torch.randn({n_items}, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    _worker(rank, world, model, x, {batch_size}, threads=int(os.environ.get("OMP_NUM_THREADS", "1")),
            backend=backend, port=int(os.environ["MASTER_PORT"]), out_path="outputs.pt")
'''


@dataclass
class ParallelPlan:
    """Memory arithmetic for one model on devices of a given size (bytes unless named otherwise)."""

    params: int
    bytes_per_param: float
    weights_bytes: float
    activation_bytes: float        # KV cache or activations for the requested batch, as given
    overhead: float                # fraction reserved for the runtime, fragmentation, buffers
    device_bytes: float
    devices_needed: int            # for the weights + activations, split evenly (tensor or pipeline parallel)
    fits_one_device: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        gb = 1e9
        return (f"{self.params / 1e9:.3g} B params x {self.bytes_per_param:g} B = "
                f"{self.weights_bytes / gb:.1f} GB weights + {self.activation_bytes / gb:.1f} GB activations/KV; "
                f"usable per device {(1 - self.overhead) * self.device_bytes / gb:.1f} GB -> "
                f"{self.devices_needed} device(s)"
                + (" (fits one)" if self.fits_one_device else " (model parallelism needed)"))


_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}


def model_parallel_plan(params: int, precision: str = "fp16", *, device_gb: float = 80.0, activation_gb: float = 0.0,
                        overhead: float = 0.1) -> ParallelPlan:
    """How many devices of ``device_gb`` GB a model of ``params`` parameters needs at ``precision``
    (fp32, fp16, bf16, int8, int4), with ``activation_gb`` of activations or KV cache and ``overhead``
    of each device kept free. Returns a :class:`ParallelPlan`."""
    if isinstance(params, bool) or not isinstance(params, int) or params < 1:
        raise ValueError(f"params={params!r} must be an int >= 1")
    if precision not in _BYTES:
        raise ValueError(f"precision={precision!r}; allowed: {sorted(_BYTES)}")
    if not device_gb > 0 or activation_gb < 0 or not 0 <= overhead < 1:
        raise ValueError(f"need device_gb > 0 (got {device_gb}), activation_gb >= 0 (got {activation_gb}), "
                         f"0 <= overhead < 1 (got {overhead})")
    weights = params * _BYTES[precision]
    need = weights + activation_gb * 1e9
    usable = (1 - overhead) * device_gb * 1e9
    n = max(1, math.ceil(need / usable))
    return ParallelPlan(params, _BYTES[precision], weights, activation_gb * 1e9, overhead, device_gb * 1e9, n, n == 1)

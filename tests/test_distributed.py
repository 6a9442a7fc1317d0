"""mclab.distributed: sharding, exact data-parallel outputs, memory arithmetic, bad input."""
from __future__ import annotations

import ast

import pytest
import torch

from mclab import distributed as D
from mclab.models import small_cnn


def _inputs(n: int = 100) -> torch.Tensor:
    return torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("n,bs,w", [(100, 32, 2), (64, 32, 2), (10, 32, 3), (0, 8, 2), (257, 16, 4), (5, 1, 5)])
def test_shards_cover_every_row_once_on_micro_batch_boundaries(n, bs, w):
    shards = D.shard_ranges(n, bs, w)
    assert len(shards) == w and shards[0][0] == 0 and shards[-1][1] == n
    assert all(a <= b for a, b in shards) and all(shards[i][1] == shards[i + 1][0] for i in range(w - 1))
    assert all(a % bs == 0 for a, b in shards if b > a)  # every block starts a micro-batch
    sizes = [-(-(b - a) // bs) for a, b in shards]  # micro-batches per rank differ by at most one
    assert max(sizes) - min(sizes) <= 1


def test_two_workers_return_exactly_the_single_process_outputs_in_order():
    model = small_cnn(8).eval()
    x = _inputs(100)  # 4 micro-batches of 32 (the last one 4 rows): ranks get 2 each
    ref = D.run_local(model, x, batch_size=32, threads=1)
    r = D.run_data_parallel(model, x, D.DistConfig(workers=2, threads_per_worker=1, batch_size=32))
    assert torch.equal(r.outputs, ref)
    assert r.workers == 2 and r.backend == "gloo" and r.items == 100 and r.shards == [(0, 64), (64, 100)]
    assert 0 < r.compute_s < r.wall_s and r.startup_s > 0 and r.gather_s >= 0
    assert r.as_dict()["output_shape"] == [100, 10] and r.throughput_per_s > r.end_to_end_per_s


def test_a_worker_with_nothing_to_do_still_joins_the_gather():
    model = small_cnn(4).eval()
    x = _inputs(10)  # one micro-batch, two workers: rank 1 is idle
    r = D.run_data_parallel(model, x, D.DistConfig(workers=2, batch_size=32))
    assert torch.equal(r.outputs, D.run_local(model, x, batch_size=32, threads=1))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="workers=0"):
        D.DistConfig(workers=0)
    with pytest.raises(ValueError, match="backend="):
        D.DistConfig(backend="mpi")
    with pytest.raises(ValueError, match="batch_size"):
        D.DistConfig(batch_size=0)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        D.run_local(lambda t: t, _inputs(4))
    with pytest.raises(ValueError, match=r"shape \(4, 3, 8, 8\)"):  # caught in the caller, before any process starts
        D.run_data_parallel(small_cnn(4), torch.zeros(4, 3, 8, 8))
    with pytest.raises(ValueError, match="non-empty"):
        D.run_local(small_cnn(4), torch.zeros(0, 1, 32, 32))
    with pytest.raises(ValueError, match="precision="):
        D.model_parallel_plan(10, "fp8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="one GPU per worker"):
            D.run_data_parallel(small_cnn(4), _inputs(4), D.DistConfig(backend="nccl"))


def test_model_parallel_arithmetic():
    p = D.model_parallel_plan(70_000_000_000, "fp16", device_gb=80, overhead=0.1)
    assert p.weights_bytes == 140e9 and p.devices_needed == 2 and not p.fits_one_device  # 140 GB > 72 GB usable
    assert D.model_parallel_plan(70_000_000_000, "int4", device_gb=80).devices_needed == 1  # 35 GB
    assert D.model_parallel_plan(7_000_000_000, "fp16", device_gb=24, activation_gb=4).devices_needed == 1  # 18 GB
    assert "model parallelism needed" in str(p)


def test_torchrun_script_is_valid_python_that_uses_the_same_worker():
    text = D.torchrun_script(n_items=64)
    ast.parse(text)
    assert "from mclab.distributed import _worker" in text and 'os.environ["RANK"]' in text

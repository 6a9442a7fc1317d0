"""Search: which architecture to build under a latency budget, and how many bits each layer gets.

Hardware-aware architecture search in the Once-for-All manner (Cai et al., ICLR 2020), small enough for two CPU
cores, in four steps:

1. :class:`Supernet` — MobileNetV2-style inverted-residual blocks whose kernel size, expansion ratio and depth per
   stage are elastic; every sub-network (an :class:`Arch`) is a slice of the same weights: a smaller kernel is the
   centre of the largest, a smaller expansion the first hidden channels, a shallower stage the first blocks.
   :func:`train_supernet` trains them all at once with the *sandwich rule* (largest, smallest and random
   sub-networks each step, the smaller ones distilled from the largest's outputs); :func:`extract` copies a
   sub-network out as an ordinary module and :func:`recalibrate` re-estimates its BatchNorm statistics
   (:func:`mclab.prune.recalibrate_bn_`), which shared weights need before they can be evaluated.
2. :class:`LatencyLUT` — every block choice measured alone on this CPU with one runtime (:func:`build_lut`, via
   :func:`mclab.runtimes.load` and :func:`mclab.bench.measure`); the sum predicts a sub-network's latency without
   running it, and :func:`check_predictor` measures sampled sub-networks to give the rank correlation.
3. :func:`search` — evolutionary or random search under a latency budget at a fixed number of evaluations
   (:class:`Evaluator` counts them), returning a :class:`SearchResult`; :func:`compare_methods` runs both over
   several seeds at equal evaluations (a :class:`SearchComparison` with the spread). Search on a set large and hard
   enough to separate the sub-networks (``mclab.data.digits("val_aug")``): on the 359 clean validation digits
   nearly all score alike, and the best of many draws is mostly the luckiest.
4. Mixed precision: :func:`bit_sensitivity` (output KL divergence per layer at 8/6/4/3/2-bit weights, fake-quantised by
   :func:`mclab.quant.quantize_weights_`), :func:`allocate_bits` (an integer program solved exactly by dynamic
   programming: the widths with the least summed divergence that fit a size budget; HAQ's goal without its
   reinforcement learner) and :func:`apply_bits_`.

Introduced in notebook 19.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    # the search space and the supernet
    "SupernetConfig", "Arch", "MBBlock", "Supernet", "extract", "recalibrate", "sample_arch", "smallest", "largest",
    "mobilenet_style",
    # training once
    "SupernetTrainConfig", "train_supernet", "cached_supernet",
    # latency
    "LATENCY_PERCENTILE", "LatencyLUT", "build_lut", "measure_arch", "module_latency_ms", "PredictorCheck",
    "check_predictor", "spearman",
    # search
    "METHODS", "Evaluator", "SearchConfig", "SearchResult", "search", "SearchComparison", "compare_methods",
    # mixed precision
    "BIT_CHOICES", "Sensitivity", "bit_sensitivity", "Allocation", "allocate_bits", "uniform_bits", "apply_bits_",
]


# ----------------------------------------------------------------------------- the search space


def _check_choices(name: str, value: Any, lo: int) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= lo for v in value):
        raise ValueError(f"{name}={value!r} must be a non-empty tuple of ints >= {lo}")
    return tuple(sorted(set(value)))


@dataclass(frozen=True)
class SupernetConfig:
    """The search space: a stem, one stage per entry of ``widths``, a 1×1 head, pooling and a classifier."""

    widths: tuple[int, ...] = (8, 16, 24)      # output channels per stage (MobileNetV2's first stages, halved)
    strides: tuple[int, ...] = (1, 2, 2)       # first block of each stage; 8 px in -> 8, 4, 2 px
    stem: int = 8                              # stem channels (3×3 conv)
    head: int = 48                             # 1×1 conv before pooling
    kernels: tuple[int, ...] = (3, 5)          # depthwise kernel sizes; odd, the largest holds the others
    expands: tuple[int, ...] = (2, 3, 4)       # expansion ratios (hidden = ratio × input channels)
    depths: tuple[int, ...] = (1, 2, 3)        # blocks per stage
    size: int = 8                              # input pixels: the digits' own 8×8 (2 cores train it in minutes)
    classes: int = 10

    def __post_init__(self) -> None:
        for name in ("widths", "strides"):
            _check_choices(name, getattr(self, name), 1)
        if len(self.widths) != len(self.strides):
            raise ValueError(f"widths={self.widths} and strides={self.strides} need one entry per stage")
        object.__setattr__(self, "kernels", _check_choices("kernels", self.kernels, 1))
        object.__setattr__(self, "expands", _check_choices("expands", self.expands, 1))
        object.__setattr__(self, "depths", _check_choices("depths", self.depths, 1))
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels={self.kernels} must be odd (a centred sub-kernel)")
        for name in ("stem", "head", "size", "classes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}={v!r} must be an int >= 1")
        from .data import _check_size
        _check_size(self.size)

    @property
    def n_stages(self) -> int:
        return len(self.widths)

    def stage_io(self, stage: int, block: int) -> tuple[int, int, int, int]:
        """(in channels, out channels, stride, input pixels) of block ``block`` of ``stage``."""
        cin = (self.stem, *self.widths)[stage] if block == 0 else self.widths[stage]
        px = self.size
        for s in self.strides[:stage]:
            px = math.ceil(px / s)
        if block > 0:
            px = math.ceil(px / self.strides[stage])
        return cin, self.widths[stage], self.strides[stage] if block == 0 else 1, px

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Arch:
    """One sub-network: per stage, one (kernel, expansion) pair per block; a stage's depth is its length."""

    stages: tuple[tuple[tuple[int, int], ...], ...]

    def __post_init__(self) -> None:
        ok = isinstance(self.stages, tuple) and all(
            isinstance(s, tuple) and s and all(isinstance(b, tuple) and len(b) == 2 for b in s) for s in self.stages)
        if not ok:
            raise ValueError(f"stages={self.stages!r} must be a tuple of non-empty tuples of (kernel, expand) pairs")

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)

    def check(self, cfg: SupernetConfig) -> "Arch":
        """Raise a ValueError naming what lies outside ``cfg``'s search space; return self."""
        if len(self.stages) != cfg.n_stages:
            raise ValueError(f"arch has {len(self.stages)} stages; the supernet has {cfg.n_stages}")
        for i, s in enumerate(self.stages):
            if len(s) not in cfg.depths:
                raise ValueError(f"stage {i} depth {len(s)} is not in depths={cfg.depths}")
            for k, e in s:
                if k not in cfg.kernels or e not in cfg.expands:
                    raise ValueError(f"stage {i} block (kernel={k}, expand={e}) is outside kernels={cfg.kernels}, "
                                     f"expands={cfg.expands}")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"stages": [[list(b) for b in s] for s in self.stages], "depths": list(self.depths)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Arch":
        return cls(tuple(tuple((int(k), int(e)) for k, e in s) for s in d["stages"]))

    def __str__(self) -> str:
        return " | ".join(" ".join(f"k{k}e{e}" for k, e in s) for s in self.stages)


def sample_arch(cfg: SupernetConfig, rng: random.Random) -> Arch:
    """A uniformly random sub-network of ``cfg``'s space (depth, then each block's kernel and expansion)."""
    return Arch(tuple(tuple((rng.choice(cfg.kernels), rng.choice(cfg.expands)) for _ in range(rng.choice(cfg.depths)))
                      for _ in range(cfg.n_stages)))


def largest(cfg: SupernetConfig) -> Arch:
    return Arch(tuple(((max(cfg.kernels), max(cfg.expands)),) * max(cfg.depths) for _ in range(cfg.n_stages)))


def smallest(cfg: SupernetConfig) -> Arch:
    return Arch(tuple(((min(cfg.kernels), min(cfg.expands)),) * min(cfg.depths) for _ in range(cfg.n_stages)))


# ----------------------------------------------------------------------------- blocks and the supernet


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if act else nn.Sequential(*layers)


class MBBlock(nn.Module):
    """MobileNetV2's inverted residual: 1×1 expand -> k×k depthwise -> 1×1 project (BatchNorm after each, ReLU6
    after the first two), plus the input when stride is 1 and channels match. (B, cin, H, W) -> (B, cout, H/s, W/s).
    As a supernet block it is built at the largest kernel and expansion and :meth:`forward_sub` runs a slice."""

    def __init__(self, cin: int, cout: int, kernel: int, expand: int, stride: int = 1) -> None:
        super().__init__()
        hidden = cin * expand
        self.cin, self.cout, self.kernel, self.expand, self.stride = cin, cout, kernel, expand, stride
        self.pw = _conv_bn(cin, hidden, 1)
        self.dw = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.proj = _conv_bn(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(self.dw(self.pw(x)))
        return x + y if self.residual else y

    @staticmethod
    def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, c: int) -> torch.Tensor:
        # shared weights: the sub-network's own batch statistics (running ones are recalibrated after extraction)
        return F.batch_norm(x, None, None, bn.weight[:c], bn.bias[:c], training=True, eps=bn.eps)

    def _kernel(self, k: int) -> slice:
        off = (self.kernel - k) // 2
        return slice(off, off + k)

    def forward_sub(self, x: torch.Tensor, kernel: int, expand: int) -> torch.Tensor:
        """The sub-block at ``kernel`` (the centre of the largest) and ``expand`` (the first hidden channels)."""
        h, ks = self.cin * expand, self._kernel(kernel)
        y = F.relu6(self._bn(F.conv2d(x, self.pw[0].weight[:h]), self.pw[1], h))
        y = F.conv2d(y, self.dw[0].weight[:h, :, ks, ks], stride=self.stride, padding=kernel // 2, groups=h)
        y = F.relu6(self._bn(y, self.dw[1], h))
        y = self._bn(F.conv2d(y, self.proj[0].weight[:, :h]), self.proj[1], self.cout)
        return x + y if self.residual else y

    def sliced(self, kernel: int, expand: int) -> "MBBlock":
        """A standalone block at ``kernel`` and ``expand`` holding copies of this block's weights (BatchNorm
        affine parameters copied, running statistics reset: call :func:`recalibrate` on the network)."""
        out = MBBlock(self.cin, self.cout, kernel, expand, self.stride)
        h, ks = self.cin * expand, self._kernel(kernel)
        with torch.no_grad():
            out.pw[0].weight.copy_(self.pw[0].weight[:h])
            out.dw[0].weight.copy_(self.dw[0].weight[:h, :, ks, ks])
            out.proj[0].weight.copy_(self.proj[0].weight[:, :h])
            for src, dst, c in ((self.pw[1], out.pw[1], h), (self.dw[1], out.dw[1], h),
                                (self.proj[1], out.proj[1], self.cout)):
                dst.weight.copy_(src.weight[:c])
                dst.bias.copy_(src.bias[:c])
        return out


class Supernet(nn.Module):
    """Every sub-network of a :class:`SupernetConfig` in one set of weights. ``forward(x, arch)`` runs ``arch``
    (default: the largest) with shared weights and batch statistics; (B, 1, size, size) -> (B, classes) logits."""

    def __init__(self, cfg: SupernetConfig | None = None, *, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SupernetConfig()
        if not isinstance(cfg, SupernetConfig):
            raise TypeError(f"cfg must be a SupernetConfig, got {type(cfg).__name__}")
        torch.manual_seed(seed)
        self.stem = _conv_bn(1, cfg.stem, 3)
        k, e = max(cfg.kernels), max(cfg.expands)
        self.stages = nn.ModuleList(
            nn.ModuleList(MBBlock(*cfg.stage_io(s, b)[:2], k, e, cfg.stage_io(s, b)[2]) for b in range(max(cfg.depths)))
            for s in range(cfg.n_stages))
        self.head = nn.Sequential(_conv_bn(cfg.widths[-1], cfg.head, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(cfg.head, cfg.classes))

    def forward(self, x: torch.Tensor, arch: Arch | None = None) -> torch.Tensor:
        arch = arch or largest(self.cfg)
        x = self.stem(x)                                          # (B, stem, size, size)
        for blocks, choice in zip(self.stages, arch.stages, strict=True):
            for block, (k, e) in zip(blocks, choice, strict=False):  # depth: the first len(choice) blocks
                x = block.forward_sub(x, k, e)
        return self.head(x)                                       # (B, classes)


def extract(supernet: Supernet, arch: Arch) -> nn.Sequential:
    """``arch`` copied out of ``supernet`` as an ordinary ``nn.Sequential`` (stem, blocks, head) that any runtime
    can load. Its BatchNorm running statistics still need :func:`recalibrate`. Returns the module in eval mode."""
    if not isinstance(supernet, Supernet):
        raise TypeError(f"supernet must be a Supernet, got {type(supernet).__name__}")
    arch.check(supernet.cfg)
    blocks = [blk.sliced(k, e) for blks, choice in zip(supernet.stages, arch.stages, strict=True)
              for blk, (k, e) in zip(blks, choice, strict=False)]
    return nn.Sequential(copy.deepcopy(supernet.stem), *blocks, copy.deepcopy(supernet.head)).eval()


def recalibrate(model: nn.Module, data: Any, *, max_images: int = 512) -> nn.Module:
    """Re-estimate ``model``'s BatchNorm statistics on ``max_images`` images of ``data`` (training digits) with
    :func:`mclab.prune.recalibrate_bn_`; returns the model in eval mode. A sub-network cut from shared weights has
    none of its own, so this comes before every evaluation (Once-for-All does the same)."""
    from .prune import recalibrate_bn_

    recalibrate_bn_(model, data, max_images=max_images)
    return model.eval()


def mobilenet_style(cfg: SupernetConfig | None = None) -> Arch:
    """The hand-designed MobileNetV2-style sub-network of the space: 3×3 kernels, the widest expansion (MobileNetV2
    uses 6), the middle depth per stage. The designers' choice a search should beat or match (notebook 19
    fine-tunes it from the supernet's weights, as it does the found ones)."""
    cfg = cfg or SupernetConfig()
    k, e, d = 3 if 3 in cfg.kernels else min(cfg.kernels), max(cfg.expands), sorted(cfg.depths)[len(cfg.depths) // 2]
    return Arch(tuple(((k, e),) * d for _ in range(cfg.n_stages)))


# ----------------------------------------------------------------------------- training once


@dataclass(frozen=True)
class SupernetTrainConfig:
    """The sandwich rule: each step trains the largest sub-network on the labels, and the smallest plus
    ``random_subnets`` random ones on the largest's softened outputs (in-place distillation)."""

    epochs: int = 12
    batch_size: int = 64
    lr: float = 4e-3                 # AdamW peak of a one-cycle schedule
    random_subnets: int = 1          # besides largest and smallest; 2 cores afford one
    temperature: float = 1.0         # of the in-place distillation
    augment: float = 0.5             # strength of mclab.data.augment on each batch
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}={v!r} must be an int >= 1")
        if not isinstance(self.random_subnets, int) or self.random_subnets < 0:
            raise ValueError(f"random_subnets={self.random_subnets!r} must be an int >= 0")
        if not self.lr > 0 or not self.temperature > 0 or self.augment < 0:
            raise ValueError(f"lr={self.lr} and temperature={self.temperature} must be > 0, augment={self.augment} "
                             f">= 0")


def train_supernet(net: Supernet, config: SupernetTrainConfig | None = None, *, progress: bool = False) -> list[float]:
    """Train ``net`` in place on the digits' training split with the sandwich rule. Returns the mean loss of the
    largest sub-network per epoch."""
    from tqdm.auto import tqdm

    from .data import augment, digits

    cfg = config or SupernetTrainConfig()
    if not isinstance(net, Supernet):
        raise TypeError(f"net must be a Supernet, got {type(net).__name__}")
    ds = digits("train", size=net.cfg.size)
    g, rng = torch.Generator().manual_seed(cfg.seed), random.Random(cfg.seed)
    steps = cfg.epochs * math.ceil(len(ds) / cfg.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    big, small, t = largest(net.cfg), smallest(net.cfg), cfg.temperature
    losses = []
    net.train()
    bar = tqdm(total=steps, desc="supernet", disable=not progress, leave=False)
    for _ in range(cfg.epochs):
        order, total = torch.randperm(len(ds), generator=g), 0.0
        for i in range(0, len(ds), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            x, y = ds.x[idx], ds.y[idx]
            if cfg.augment:
                x = augment(x, generator=g, strength=cfg.augment)
            opt.zero_grad(set_to_none=True)
            logits = net(x, big)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            soft = F.softmax(logits.detach() / t, dim=1)
            for arch in [small, *(sample_arch(net.cfg, rng) for _ in range(cfg.random_subnets))]:
                kd = F.kl_div(F.log_softmax(net(x, arch) / t, dim=1), soft, reduction="batchmean") * t * t
                kd.backward()                                    # gradients of all sub-networks add up
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            bar.update(1)
        losses.append(total / len(ds))
    bar.close()
    return losses


def cached_supernet(cfg: SupernetConfig | None = None, train: SupernetTrainConfig | None = None, *,
                    progress: bool = False) -> tuple[Supernet, dict[str, Any]]:
    """A trained supernet from the kit's cache (:func:`mclab.models.cache_dir`), trained and saved first when
    missing — trained once, searched many times. Returns (supernet, info) where info holds the per-epoch loss,
    the training seconds and whether it came from the cache."""
    from .models import cache_dir

    cfg, train = cfg or SupernetConfig(), train or SupernetTrainConfig()
    key = hashlib.sha256(json.dumps({"net": asdict(cfg), "train": asdict(train), "v": 1}, sort_keys=True,
                                    default=list).encode()).hexdigest()[:12]
    path = cache_dir() / f"supernet-{key}.pt"
    net = Supernet(cfg, seed=train.seed)
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(blob["state_dict"])
        return net.eval(), {**blob["info"], "cached": True}
    t0 = time.perf_counter()
    losses = train_supernet(net, train, progress=progress)
    info = {"loss": losses, "seconds": time.perf_counter() - t0}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"state_dict": net.state_dict(), "info": info}, tmp)
    os.replace(tmp, path)
    return net.eval(), {**info, "cached": False}


# ----------------------------------------------------------------------------- latency: lookup table


LATENCY_PERCENTILE = 10   # of each block's or network's call times: robust to other processes' interference


def _runner(module: nn.Module, shape: tuple[int, ...], runtime: str, threads: int) -> Any:
    from . import runtimes

    return runtimes.load(module, runtime, input_shape=shape, threads=threads)


def _latencies_ms(runners: list[Any], threads: int, min_time_s: float, rounds: int = 2) -> list[float]:
    """Latency (ms, batch 1) of each runner: the :data:`LATENCY_PERCENTILE` th percentile of at least 30 calls,
    measured in ``rounds`` passes over all runners, and the lowest of the passes kept. On a shared machine the
    low percentile and the best pass estimate what the code costs rather than what the neighbours cost."""
    from . import bench

    cfg = bench.BenchConfig(warmup=5, min_iters=30, min_time_s=min_time_s, max_time_s=5.0, n_boot=20)
    best = [math.inf] * len(runners)
    with bench.set_threads(threads):
        xs = [r.example_input() for r in runners]
        for _ in range(rounds):
            for i, (r, x) in enumerate(zip(runners, xs, strict=True)):
                best[i] = min(best[i], bench.measure(r.raw_run, x, config=cfg).percentile(LATENCY_PERCENTILE))
    return best


@dataclass
class LatencyLUT:
    """Per-block latencies (ms, batch 1, :data:`LATENCY_PERCENTILE` th percentile) measured on one runtime and
    thread count. A block's latency
    depends on its stage, whether it is the stage's first block (stride, channels) and its kernel and expansion.
    ``overhead_ms`` is the latency of an empty model on the runtime (the call itself): every block's entry
    includes it once, a whole network pays it once, so :meth:`predict` takes it off per part."""

    runtime: str
    threads: int
    entries: dict[str, float]              # "s{stage}/{first|rest}/k{k}e{e}" -> ms
    stem_ms: float
    head_ms: float
    overhead_ms: float
    seconds: float                          # time spent measuring

    @staticmethod
    def key(stage: int, block: int, k: int, e: int) -> str:
        return f"s{stage}/{'first' if block == 0 else 'rest'}/k{k}e{e}"

    def predict(self, arch: Arch) -> float:
        """Predicted latency of ``arch`` (ms): stem + blocks + head, with the call overhead counted once."""
        parts = [self.stem_ms, self.head_ms]
        for s, blocks in enumerate(arch.stages):
            for b, (k, e) in enumerate(blocks):
                key = self.key(s, b, k, e)
                if key not in self.entries:
                    raise ValueError(f"block {key} is not in this lookup table ({len(self.entries)} entries)")
                parts.append(self.entries[key])
        return sum(parts) - (len(parts) - 1) * self.overhead_ms

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Empty(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0                                   # one trivial op: ONNX export needs a node


def build_lut(cfg: SupernetConfig | None = None, runtime: str = "torch", *, threads: int = 1,
              min_time_s: float = 0.05) -> LatencyLUT:
    """Measure every block choice of ``cfg`` alone on ``runtime`` (any name of :data:`mclab.runtimes.RUNTIMES`
    that is available here) with ``threads`` threads, plus the stem, the head and an empty model. Latency does
    not depend on weight values, so random weights serve. Returns a :class:`LatencyLUT` (ms)."""
    from . import runtimes

    cfg = cfg or SupernetConfig()
    if runtime not in runtimes.RUNTIMES:
        raise ValueError(f"runtime={runtime!r} is unknown; allowed: {sorted(runtimes.RUNTIMES)}")
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads={threads!r} must be an int >= 1")
    t0 = time.perf_counter()
    torch.manual_seed(0)
    keys, runners = [], []
    with torch.no_grad():
        for s in range(cfg.n_stages):
            for b in range(min(2, max(cfg.depths))):
                cin, cout, stride, px = cfg.stage_io(s, b)
                for k in cfg.kernels:
                    for e in cfg.expands:
                        keys.append(LatencyLUT.key(s, b, k, e))
                        runners.append(_runner(MBBlock(cin, cout, k, e, stride).eval(), (cin, px, px), runtime,
                                               threads))
        net = Supernet(cfg)
        last_px = cfg.stage_io(cfg.n_stages - 1, 1)[3]
        runners += [_runner(net.stem.eval(), (1, cfg.size, cfg.size), runtime, threads),
                    _runner(net.head.eval(), (cfg.widths[-1], last_px, last_px), runtime, threads),
                    _runner(_Empty(), (1, cfg.size, cfg.size), runtime, threads)]
    ms = _latencies_ms(runners, threads, min_time_s)
    stem, head, over = ms[-3:]
    return LatencyLUT(runtime, threads, dict(zip(keys, ms[:-3], strict=True)), stem, head, over,
                      time.perf_counter() - t0)


def module_latency_ms(module: nn.Module, input_shape: tuple[int, ...], runtime: str = "torch", *, threads: int = 1,
                      min_time_s: float = 0.1) -> float:
    """Latency (ms, batch 1) of any module measured the way the lookup table measures blocks, so that
    hand-designed networks sit on the same axis as searched ones. ``input_shape`` is (C, H, W)."""
    return _latencies_ms([_runner(module.eval(), tuple(input_shape), runtime, threads)], threads, min_time_s)[0]


def measure_arch(supernet: Supernet, archs: Arch | Sequence[Arch], runtime: str = "torch", *, threads: int = 1,
                 min_time_s: float = 0.1) -> float | list[float]:
    """Measured latency (ms, batch 1, :data:`LATENCY_PERCENTILE` th percentile, best of two interleaved passes) of
    one sub-network, or of each of a list, as whole networks on ``runtime``."""
    one = isinstance(archs, Arch)
    lst = [archs] if one else list(archs)
    size = supernet.cfg.size
    runners = [_runner(extract(supernet, a), (1, size, size), runtime, threads) for a in lst]
    ms = _latencies_ms(runners, threads, min_time_s)
    return ms[0] if one else ms


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation of two equally long sequences (ties get their mean rank); in [-1, 1]."""
    from scipy.stats import spearmanr

    if len(a) != len(b) or len(a) < 3:
        raise ValueError(f"need two sequences of equal length >= 3, got {len(a)} and {len(b)}")
    return float(spearmanr(a, b).statistic)


@dataclass
class PredictorCheck:
    """Predicted vs measured latency (ms) of sampled sub-networks on one runtime, and their rank correlation."""

    runtime: str
    archs: list[Arch]
    predicted_ms: list[float]
    measured_ms: list[float]

    @property
    def spearman(self) -> float:
        return spearman(self.predicted_ms, self.measured_ms)

    @property
    def mean_abs_rel_error(self) -> float:
        """Mean |predicted - measured| / measured (fraction)."""
        p, m = np.array(self.predicted_ms), np.array(self.measured_ms)
        return float(np.mean(np.abs(p - m) / m))

    def as_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "archs": [str(a) for a in self.archs], "predicted_ms": self.predicted_ms,
                "measured_ms": self.measured_ms, "spearman": self.spearman,
                "mean_abs_rel_error": self.mean_abs_rel_error}


def check_predictor(supernet: Supernet, lut: LatencyLUT, n: int = 20, *, seed: int = 0,
                    min_time_s: float = 0.1) -> PredictorCheck:
    """Pick ``n`` sub-networks spread over the space's latency range (the smallest, the largest, and random ones
    at evenly spaced quantiles of the predicted latency of 500 random draws, as a search visits them all), measure
    each as a whole on the LUT's runtime and compare with the prediction. Returns a :class:`PredictorCheck`."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 3:
        raise ValueError(f"n={n!r} must be an int >= 3 (a rank correlation needs three points)")
    rng = random.Random(seed)
    pool = sorted({sample_arch(supernet.cfg, rng) for _ in range(500)}, key=lut.predict)
    picks = [pool[round(q)] for q in np.linspace(0, len(pool) - 1, n - 2)]
    archs = [smallest(supernet.cfg), *picks, largest(supernet.cfg)]
    measured = measure_arch(supernet, archs, lut.runtime, threads=lut.threads, min_time_s=min_time_s)
    return PredictorCheck(lut.runtime, archs, [lut.predict(a) for a in archs], measured)


# ----------------------------------------------------------------------------- search


class Evaluator:
    """Accuracy of sub-networks with shared weights: extract, recalibrate BatchNorm on ``calib`` images, evaluate
    on ``data``. Remembers every result, so ``evaluations`` counts distinct sub-networks evaluated."""

    def __init__(self, supernet: Supernet, data: Any, calib: Any, *, max_images: int = 512) -> None:
        self.supernet, self.data, self.calib, self.max_images = supernet, data, calib, max_images
        self.cache: dict[Arch, float] = {}

    @property
    def evaluations(self) -> int:
        return len(self.cache)

    def model(self, arch: Arch) -> nn.Module:
        """``arch`` extracted and recalibrated (eval mode)."""
        return recalibrate(extract(self.supernet, arch), self.calib, max_images=self.max_images)

    def __call__(self, arch: Arch) -> float:
        """Top-1 accuracy (fraction) of ``arch`` on the evaluator's data."""
        from .models import evaluate

        if arch not in self.cache:
            self.cache[arch] = evaluate(self.model(arch), self.data).accuracy
        return self.cache[arch]


METHODS = ("evolution", "random")


@dataclass(frozen=True)
class SearchConfig:
    """How to search: ``"evolution"`` (mutation + crossover of the best) or ``"random"``, with the same number of
    distinct evaluations, under ``budget_ms`` of predicted latency."""

    method: str = "evolution"
    evaluations: int = 40
    population: int = 6                    # evolution: first generation size and children per generation
    parents: int = 3                       # evolution: the best that breed
    mutate: float = 0.1                    # evolution: chance that each choice is redrawn (small steps)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}; allowed: {', '.join(map(repr, METHODS))}")
        for name, lo in (("evaluations", 1), ("population", 2), ("parents", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name}={v!r} must be an int >= {lo}")
        if not 0 <= self.mutate <= 1:
            raise ValueError(f"mutate={self.mutate!r} must be a probability in [0, 1]")


@dataclass
class SearchResult:
    """The best sub-network found, its accuracy (fraction, on the evaluator's data) and predicted latency (ms),
    and the history of every evaluation in order."""

    config: SearchConfig
    budget_ms: float
    best: Arch
    accuracy: float
    latency_ms: float
    history: list[tuple[Arch, float, float]] = field(repr=False)   # (arch, accuracy, predicted ms)

    def best_so_far(self) -> list[float]:
        """Best accuracy after each evaluation."""
        return np.maximum.accumulate([a for _, a, _ in self.history]).tolist()

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.config.method, "seed": self.config.seed, "evaluations": len(self.history),
                "budget_ms": self.budget_ms, "best": self.best.as_dict(), "best_str": str(self.best),
                "accuracy": self.accuracy, "latency_ms": self.latency_ms}


def _feasible(draw: Callable[[], Arch], ok: Callable[[Arch], bool], seen: set, tries: int = 2000) -> Arch | None:
    for _ in range(tries):
        a = draw()
        if a not in seen and ok(a):
            return a
    return None


def _mutate(a: Arch, cfg: SupernetConfig, p: float, rng: random.Random) -> Arch:
    stages = []
    for s in a.stages:
        d = rng.choice(cfg.depths) if rng.random() < p else len(s)
        blocks = list(s[:d]) + [(rng.choice(cfg.kernels), rng.choice(cfg.expands)) for _ in range(d - len(s))]
        stages.append(tuple((rng.choice(cfg.kernels) if rng.random() < p else k,
                             rng.choice(cfg.expands) if rng.random() < p else e) for k, e in blocks))
    return Arch(tuple(stages))


def _crossover(a: Arch, b: Arch, rng: random.Random) -> Arch:
    return Arch(tuple(rng.choice((x, y)) for x, y in zip(a.stages, b.stages, strict=True)))


def search(evaluator: Evaluator, lut: LatencyLUT, budget_ms: float, config: SearchConfig | None = None) -> SearchResult:
    """Find the most accurate sub-network whose predicted latency (``lut``) is within ``budget_ms``, spending
    exactly ``config.evaluations`` distinct evaluations (fewer only if the space runs out). Evolution keeps the
    ``parents`` best, and breeds ``population`` children per generation by crossover (half) or mutation; random
    search draws feasible sub-networks uniformly. Returns a :class:`SearchResult`."""
    cfg = config or SearchConfig()
    if not isinstance(evaluator, Evaluator):
        raise TypeError(f"evaluator must be an Evaluator, got {type(evaluator).__name__}")
    if not isinstance(budget_ms, (int, float)) or not budget_ms > 0:
        raise ValueError(f"budget_ms={budget_ms!r} must be a positive latency in ms")
    space = evaluator.supernet.cfg
    if lut.predict(smallest(space)) > budget_ms:
        raise ValueError(f"budget_ms={budget_ms:.3f} is below the smallest sub-network's predicted "
                         f"{lut.predict(smallest(space)):.3f} ms on {lut.runtime}")
    rng = random.Random(cfg.seed)
    ok = (lambda a: lut.predict(a) <= budget_ms)  # noqa: E731
    history: list[tuple[Arch, float, float]] = []
    seen: set[Arch] = set()

    def run(a: Arch) -> None:
        seen.add(a)
        history.append((a, evaluator(a), lut.predict(a)))

    first = cfg.evaluations if cfg.method == "random" else min(cfg.population, cfg.evaluations)
    for _ in range(first):
        a = _feasible(lambda: sample_arch(space, rng), ok, seen)
        if a is None:
            break
        run(a)
    while cfg.method == "evolution" and len(history) < cfg.evaluations:
        top = [a for a, _, _ in sorted(history, key=lambda h: -h[1])[:cfg.parents]]
        made = 0
        for _ in range(min(cfg.population, cfg.evaluations - len(history))):
            def child(top: list[Arch] = top) -> Arch:
                if len(top) > 1 and rng.random() < 0.5:
                    return _mutate(_crossover(*rng.sample(top, 2), rng), space, cfg.mutate / 2, rng)
                return _mutate(rng.choice(top), space, cfg.mutate, rng)
            a = _feasible(child, ok, seen)
            if a is not None:
                run(a)
                made += 1
        if not made:
            break
    best = max(history, key=lambda h: (h[1], -h[2]))   # ties: the faster one
    return SearchResult(cfg, float(budget_ms), best[0], best[1], best[2], history)


@dataclass
class SearchComparison:
    """Several search methods run under one budget at equal evaluations, once per seed: ``runs[method][i]`` is
    the :class:`SearchResult` of ``seeds[i]``. Accuracies are fractions on the evaluator's data."""

    budget_ms: float
    evaluations: int
    seeds: list[int]
    runs: dict[str, list[SearchResult]] = field(repr=False)

    def best(self, method: str) -> np.ndarray:
        """The best accuracy each seed's search of ``method`` found, in seed order."""
        if method not in self.runs:
            raise ValueError(f"method={method!r} was not run; run: {sorted(self.runs)}")
        return np.array([r.accuracy for r in self.runs[method]])

    def mean(self, method: str) -> float:
        return float(self.best(method).mean())

    def sd(self, method: str) -> float:
        """Spread across seeds (sample standard deviation; 0 for one seed)."""
        b = self.best(method)
        return float(b.std(ddof=1)) if len(b) > 1 else 0.0

    def diff(self, a: str = "evolution", b: str = "random") -> np.ndarray:
        """Per seed, ``a``'s best minus ``b``'s best (fractions; positive: ``a`` found the more accurate)."""
        return self.best(a) - self.best(b)

    def to_frame(self):
        """One row per seed, one column per method (accuracy in %), plus the difference when both methods ran."""
        import pandas as pd

        df = pd.DataFrame({m: 100 * self.best(m) for m in self.runs}, index=[f"seed {s}" for s in self.seeds])
        if {"evolution", "random"} <= set(self.runs):
            df["evolution - random"] = 100 * self.diff()
        return df

    def as_dict(self) -> dict[str, Any]:
        return {"budget_ms": self.budget_ms, "evaluations": self.evaluations, "seeds": self.seeds,
                "best": {m: self.best(m).tolist() for m in self.runs},
                "mean": {m: self.mean(m) for m in self.runs}, "sd": {m: self.sd(m) for m in self.runs},
                "runs": {m: [r.as_dict() for r in rs] for m, rs in self.runs.items()}}


def compare_methods(evaluator: Evaluator, lut: LatencyLUT, budget_ms: float, *, evaluations: int,
                    seeds: Sequence[int], config: SearchConfig | None = None,
                    methods: Sequence[str] = ("evolution", "random")) -> SearchComparison:
    """Run :func:`search` once per method and seed, every run with the same ``evaluations`` and budget; the other
    knobs (population, parents, mutation rate) come from ``config``. The evaluator's cache is shared, so a
    sub-network two runs visit is evaluated once (the counts per run are unchanged). Returns a
    :class:`SearchComparison` (notebook 19; ``benchmarks/search.py`` runs it over more seeds)."""
    from dataclasses import replace

    base = SearchConfig() if config is None else config
    if not isinstance(base, SearchConfig):
        raise TypeError(f"config must be a SearchConfig, got {type(base).__name__}")
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(
            seeds):
        raise ValueError(f"seeds={seeds!r} must be a non-empty sequence of distinct ints")
    methods = list(methods)
    if not methods:
        raise ValueError(f"methods must name at least one of {METHODS}")
    runs = {m: [search(evaluator, lut, budget_ms, replace(base, method=m, evaluations=evaluations, seed=s))
                for s in seeds] for m in methods}
    return SearchComparison(float(budget_ms), evaluations, seeds, runs)


# ----------------------------------------------------------------------------- mixed precision

BIT_CHOICES = (8, 6, 4, 3, 2)


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    from .quant.api import _quantizable

    return _quantizable(model)


def _log_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return F.log_softmax(model(x), dim=1)


def _kl(ref: torch.Tensor, model: nn.Module, x: torch.Tensor) -> float:
    """Mean KL(float model ‖ model) over the batch, in nats: how far the outputs moved (>= 0, no label noise)."""
    return float(F.kl_div(_log_probs(model, x), ref, log_target=True, reduction="batchmean"))


@dataclass
class Sensitivity:
    """Per layer and bit width: how far the outputs move — the mean KL divergence (nats) of the model's softmax
    from the float model's on the data — when only that layer's weights are fake-quantised, and the layer's weight
    bytes at that width (integers + one float32 scale per channel)."""

    kl: dict[str, dict[int, float]]
    weight_bytes: dict[str, dict[int, int]]
    kinds: dict[str, str]                  # "first", "last", "depthwise", "pointwise", "conv", "linear"
    params: dict[str, int]

    def to_frame(self):
        import pandas as pd

        rows = [{"layer": n, "kind": self.kinds[n], "params": self.params[n],
                 **{f"KL {b}b": d[b] for b in sorted(d, reverse=True)}} for n, d in self.kl.items()]
        return pd.DataFrame(rows).set_index("layer")

    def as_dict(self) -> dict[str, Any]:
        return {"kl": {n: {str(b): v for b, v in d.items()} for n, d in self.kl.items()},
                "kinds": self.kinds, "params": self.params}


def _kind(name: str, mod: nn.Module, first: str, last: str) -> str:
    if name == first:
        return "first"
    if name == last:
        return "last"
    if isinstance(mod, nn.Conv2d):
        if mod.groups > 1 and mod.groups == mod.in_channels:
            return "depthwise"
        return "pointwise" if mod.kernel_size == (1, 1) else "conv"
    return "linear"


def _check_bits_list(bits: Any) -> tuple[int, ...]:
    b = _check_choices("bits", bits, 2)
    if max(b) > 16:
        raise ValueError(f"bits={bits!r} must lie in 2..16")
    return tuple(sorted(b, reverse=True))


def bit_sensitivity(model: nn.Module, data: Any, bits: Sequence[int] = BIT_CHOICES) -> Sensitivity:
    """Quantise one Conv2d/Linear layer at a time to each width in ``bits`` (symmetric, per output channel, with
    :func:`mclab.quant.quantize_weights_`; the weights are restored after each), the rest in float, and record how
    far the outputs move on ``data`` (a dataset with an ``x`` tensor, e.g. the validation digits) as a KL divergence
    from the float model's. The divergence, unlike a loss difference, is never negative and needs no labels, so
    small effects are not lost in noise. Returns a :class:`Sensitivity`."""
    from .quant import WeightOnlyConfig, quantize_weights_

    bits = _check_bits_list(bits)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(getattr(data, "x", None), torch.Tensor):
        raise TypeError(f"data must have an x tensor (a mclab.data.DigitsDataset), got {type(data).__name__}")
    model = model.eval()
    layers = _layers(model)
    names = list(layers)
    ref = _log_probs(model, data.x)
    kl: dict[str, dict[int, float]] = {}
    nbytes: dict[str, dict[int, int]] = {}
    for name, mod in layers.items():
        keep = mod.weight.detach().clone()
        kl[name], nbytes[name] = {}, {}
        for b in bits:
            report = quantize_weights_(mod, WeightOnlyConfig(bits=b))
            kl[name][b] = _kl(ref, model, data.x)
            nbytes[name][b] = report.weight_bytes
            with torch.no_grad():
                mod.weight.copy_(keep)
    kinds = {n: _kind(n, m, names[0], names[-1]) for n, m in layers.items()}
    return Sensitivity(kl, nbytes, kinds, {n: m.weight.numel() for n, m in layers.items()})


@dataclass
class Allocation:
    """Bits per layer and the weight bytes they take (integers + scales)."""

    bits: dict[str, int]
    weight_bytes: int
    budget_bytes: int
    predicted_kl: float                    # sum of the per-layer KL divergences (the allocator's additive model)

    @property
    def mean_bits(self) -> float:
        return float(np.mean(list(self.bits.values())))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean_bits": self.mean_bits}


def uniform_bits(sens: Sensitivity, bits: int) -> Allocation:
    """Every layer at ``bits`` (one of the widths ``sens`` measured)."""
    if not all(bits in d for d in sens.kl.values()):
        raise ValueError(f"bits={bits!r} was not measured; measured: {sorted(next(iter(sens.kl.values())))}")
    size = sum(d[bits] for d in sens.weight_bytes.values())
    return Allocation(dict.fromkeys(sens.kl, bits), size, size,
                      sum(d[bits] for d in sens.kl.values()))


def allocate_bits(sens: Sensitivity, budget_bytes: int, *, resolution: int = 20_000) -> Allocation:
    """Mixed-precision allocation as a small integer program: choose one measured width per layer so that the
    summed divergence (each layer's own: the sensitivity scan's additive model) is smallest while the weights fit
    ``budget_bytes``. Solved exactly by dynamic programming over bytes (a multiple-choice knapsack; sizes are
    rounded up to ``budget_bytes / resolution`` so it stays fast and never overshoots). Returns an
    :class:`Allocation`, or raises ValueError when even the narrowest widths do not fit."""
    if not isinstance(sens, Sensitivity):
        raise TypeError(f"sens must be a Sensitivity, got {type(sens).__name__}")
    if not isinstance(budget_bytes, (int, np.integer)) or isinstance(budget_bytes, bool) or budget_bytes < 1:
        raise ValueError(f"budget_bytes={budget_bytes!r} must be a positive int")
    names = list(sens.kl)
    floor = sum(min(sens.weight_bytes[n].values()) for n in names)
    if floor > budget_bytes:
        raise ValueError(f"budget_bytes={budget_bytes} is below the narrowest allocation's {floor} bytes")
    unit = max(1, math.ceil(budget_bytes / resolution))
    cap = int(budget_bytes) // unit
    best = np.zeros(cap + 1)                       # best[c]: least loss of the layers so far within c units
    choices = []
    for n in names:
        widths = sorted(sens.kl[n], reverse=True)
        new = np.full(cap + 1, np.inf)
        arg = np.zeros(cap + 1, dtype=np.int64)
        for j, b in enumerate(widths):
            w = math.ceil(sens.weight_bytes[n][b] / unit)
            if w > cap:
                continue
            cand = np.full(cap + 1, np.inf)
            cand[w:] = best[:cap + 1 - w] + max(sens.kl[n][b], 0.0)
            better = cand < new
            new[better], arg[better] = cand[better], j
        best = new
        choices.append((widths, arg))
    c = int(np.argmin(best))                        # the least loss at any size within the budget ...
    c = int(np.flatnonzero(best <= best[c] + 1e-12)[0])   # ... at the smallest size that reaches it
    bits = {}
    for n, (widths, arg) in zip(reversed(names), reversed(choices), strict=True):
        b = widths[arg[c]]
        bits[n] = b
        c -= math.ceil(sens.weight_bytes[n][b] / unit)
    bits = {n: bits[n] for n in names}
    size = sum(sens.weight_bytes[n][b] for n, b in bits.items())
    return Allocation(bits, size, int(budget_bytes), sum(sens.kl[n][b] for n, b in bits.items()))


def apply_bits_(model: nn.Module, allocation: Allocation) -> nn.Module:
    """Fake-quantise each layer of ``model`` in place at its allocated width (symmetric, per channel, with
    :func:`mclab.quant.quantize_weights_`). Returns the model."""
    from .quant import WeightOnlyConfig, quantize_weights_

    layers = _layers(model)
    unknown = sorted(set(allocation.bits) - set(layers))
    if unknown:
        raise ValueError(f"allocation names layers {unknown[:3]} that the model does not have")
    for name, b in allocation.bits.items():
        quantize_weights_(layers[name], WeightOnlyConfig(bits=b))
    return model

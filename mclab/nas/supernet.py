"""The search space and its supernet, in the Once-for-All manner (Cai et al., ICLR 2020), small enough for two
CPU cores.

:class:`Supernet` holds MobileNetV2-style inverted-residual blocks whose kernel size, expansion ratio and depth per
stage are elastic; every sub-network (an :class:`Arch`) is a slice of the same weights: a smaller kernel is the
centre of the largest, a smaller expansion the first hidden channels, a shallower stage the first blocks.
:func:`train_supernet` trains them all at once with the *sandwich rule* (largest, smallest and random sub-networks
each step, the smaller ones distilled from the largest's outputs) of slimmable networks and BigNAS (Yu & Huang, ICCV
2019; Yu et al., ECCV 2020) — Once-for-All itself trains by progressive shrinking instead — and
:func:`cached_supernet` keeps the result;
:func:`extract` copies a sub-network out as an ordinary module and :func:`recalibrate` re-estimates its BatchNorm
statistics (:func:`mclab.prune.recalibrate_bn_`), which shared weights need before they can be evaluated.
Introduced in notebook 19.
"""
from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import cache

__all__ = [
    # the search space and the supernet
    "SupernetConfig", "Arch", "MBBlock", "Supernet", "extract", "recalibrate", "sample_arch", "smallest", "largest",
    "mobilenet_style",
    # training once
    "SupernetTrainConfig", "train_supernet", "cached_supernet",
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
        from ..data import check_size
        check_size(self.size)

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

    def check(self, space: SupernetConfig) -> "Arch":
        """Raise a ValueError naming what lies outside ``space``'s search space; return self."""
        if len(self.stages) != space.n_stages:
            raise ValueError(f"arch has {len(self.stages)} stages; the supernet has {space.n_stages}")
        for i, s in enumerate(self.stages):
            if len(s) not in space.depths:
                raise ValueError(f"stage {i} depth {len(s)} is not in depths={space.depths}")
            for k, e in s:
                if k not in space.kernels or e not in space.expands:
                    raise ValueError(f"stage {i} block (kernel={k}, expand={e}) is outside kernels={space.kernels}, "
                                     f"expands={space.expands}")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {"stages": [[list(b) for b in s] for s in self.stages], "depths": list(self.depths)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Arch":
        return cls(tuple(tuple((int(k), int(e)) for k, e in s) for s in d["stages"]))

    def __str__(self) -> str:
        return " | ".join(" ".join(f"k{k}e{e}" for k, e in s) for s in self.stages)


def sample_arch(space: SupernetConfig, rng: random.Random) -> Arch:
    """A uniformly random sub-network of the search ``space`` (depth, then each block's kernel and expansion)."""
    return Arch(tuple(tuple((rng.choice(space.kernels), rng.choice(space.expands))
                            for _ in range(rng.choice(space.depths)))
                      for _ in range(space.n_stages)))


def largest(space: SupernetConfig) -> Arch:
    return Arch(tuple(((max(space.kernels), max(space.expands)),) * max(space.depths) for _ in range(space.n_stages)))


def smallest(space: SupernetConfig) -> Arch:
    return Arch(tuple(((min(space.kernels), min(space.expands)),) * min(space.depths) for _ in range(space.n_stages)))


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

    def _bn(self, x: torch.Tensor, bn: nn.BatchNorm2d, c: int) -> torch.Tensor:
        # shared weights: normalised by the sub-network's own batch statistics. In training mode the running statistics'
        # first c channels also move towards them (Once-for-All's DynamicBatchNorm2d does the same), so the supernet
        # keeps running statistics averaged over every sub-network it trained; a slice's own are recalibrated later.
        # Slices of the buffers are views: F.batch_norm updates them in place.
        running = (bn.running_mean[:c], bn.running_var[:c]) if self.training else (None, None)
        return F.batch_norm(x, *running, bn.weight[:c], bn.bias[:c], training=True, momentum=bn.momentum, eps=bn.eps)

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
        """A standalone block at ``kernel`` and ``expand`` holding copies of this block's weights and of the first
        channels of its BatchNorm parameters and running statistics (the supernet's, averaged over all the
        sub-networks it trained: call :func:`recalibrate` for the slice's own)."""
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
                dst.running_mean.copy_(src.running_mean[:c])
                dst.running_var.copy_(src.running_var[:c])
        return out


class Supernet(nn.Module):
    """Every sub-network of a :class:`SupernetConfig` in one set of weights. ``forward(x, arch)`` runs ``arch``
    (default: the largest) with shared weights and batch statistics; (B, 1, size, size) -> (B, classes) logits."""

    def __init__(self, config: SupernetConfig | None = None, *, seed: int = 0) -> None:
        super().__init__()
        self.config = config = config or SupernetConfig()
        if not isinstance(config, SupernetConfig):
            raise TypeError(f"config must be a SupernetConfig, got {type(config).__name__}")
        torch.manual_seed(seed)
        self.stem = _conv_bn(1, config.stem, 3)
        k, e = max(config.kernels), max(config.expands)
        self.stages = nn.ModuleList(
            nn.ModuleList(MBBlock(*config.stage_io(s, b)[:2], k, e, config.stage_io(s, b)[2])
                          for b in range(max(config.depths)))
            for s in range(config.n_stages))
        self.head = nn.Sequential(_conv_bn(config.widths[-1], config.head, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(config.head, config.classes))

    def forward(self, x: torch.Tensor, arch: Arch | None = None) -> torch.Tensor:
        arch = arch or largest(self.config)
        x = self.stem(x)                                          # (B, stem, size, size)
        for blocks, choice in zip(self.stages, arch.stages, strict=True):
            for block, (k, e) in zip(blocks, choice, strict=False):  # depth: the first len(choice) blocks
                x = block.forward_sub(x, k, e)
        return self.head(x)                                       # (B, classes)


def extract(supernet: Supernet, arch: Arch) -> nn.Sequential:
    """``arch`` copied out of ``supernet`` as an ordinary ``nn.Sequential`` (stem, blocks, head) that any runtime
    can load. It carries the supernet's BatchNorm running statistics (averaged over every sub-network trained);
    :func:`recalibrate` re-estimates the sub-network's own. Returns the module in eval mode."""
    if not isinstance(supernet, Supernet):
        raise TypeError(f"supernet must be a Supernet, got {type(supernet).__name__}")
    arch.check(supernet.config)
    blocks = [blk.sliced(k, e) for blks, choice in zip(supernet.stages, arch.stages, strict=True)
              for blk, (k, e) in zip(blks, choice, strict=False)]
    return nn.Sequential(copy.deepcopy(supernet.stem), *blocks, copy.deepcopy(supernet.head)).eval()


def recalibrate(model: nn.Module, data: Any, *, max_images: int = 512) -> nn.Module:
    """Re-estimate ``model``'s BatchNorm statistics on ``max_images`` images of ``data`` (training digits) with
    :func:`mclab.prune.recalibrate_bn_`; returns the model in eval mode. A sub-network cut from shared weights has
    none of its own, so this comes before every evaluation (Once-for-All does the same)."""
    from ..prune import recalibrate_bn_

    recalibrate_bn_(model, data, max_images=max_images)
    return model.eval()


def mobilenet_style(space: SupernetConfig | None = None) -> Arch:
    """The hand-designed MobileNetV2-style sub-network of the space: 3×3 kernels, the widest expansion (MobileNetV2
    uses 6), the middle depth per stage. The designers' choice a search should beat or match (notebook 19
    fine-tunes it from the supernet's weights, as it does the found ones)."""
    space = space or SupernetConfig()
    k = 3 if 3 in space.kernels else min(space.kernels)
    e, d = max(space.expands), sorted(space.depths)[len(space.depths) // 2]
    return Arch(tuple(((k, e),) * d for _ in range(space.n_stages)))


# ----------------------------------------------------------------------------- training once


@dataclass(frozen=True)
class SupernetTrainConfig:
    """The sandwich rule: each step trains the largest sub-network on the labels, and the smallest plus
    ``random_subnets`` random ones on the largest's softened outputs (in-place distillation) — from universally
    slimmable networks (Yu & Huang, ICCV 2019) and BigNAS (Yu et al., ECCV 2020)."""

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

    from ..data import augment, digits

    cfg = config or SupernetTrainConfig()
    if not isinstance(net, Supernet):
        raise TypeError(f"net must be a Supernet, got {type(net).__name__}")
    ds = digits("train", size=net.config.size)
    g, rng = torch.Generator().manual_seed(cfg.seed), random.Random(cfg.seed)
    steps = cfg.epochs * math.ceil(len(ds) / cfg.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    big, small, t = largest(net.config), smallest(net.config), cfg.temperature
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
            for arch in [small, *(sample_arch(net.config, rng) for _ in range(cfg.random_subnets))]:
                kd = F.kl_div(F.log_softmax(net(x, arch) / t, dim=1), soft, reduction="batchmean") * t * t
                kd.backward()                                    # gradients of all sub-networks add up
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            bar.update(1)
        losses.append(total / len(ds))
    bar.close()
    return losses


def cached_supernet(config: SupernetConfig | None = None, train: SupernetTrainConfig | None = None, *,
                    progress: bool = False) -> tuple[Supernet, dict[str, Any]]:
    """A trained supernet from the kit's cache (:func:`mclab.cache.cache_dir`), trained and saved first when
    missing — trained once, searched many times. Returns (supernet, info) where info holds the per-epoch loss,
    the training seconds and whether it came from the cache."""
    config, train = config or SupernetConfig(), train or SupernetTrainConfig()
    # v2: the supernet keeps running BatchNorm statistics (v1 files hold none for the blocks)
    path = cache.cache_dir() / f"supernet-{cache.key(net=asdict(config), train=asdict(train), v=2)}.pt"
    net = Supernet(config, seed=train.seed)

    def build() -> dict[str, Any]:
        t0 = time.perf_counter()
        losses = train_supernet(net, train, progress=progress)
        return {"state_dict": net.state_dict(), "info": {"loss": losses, "seconds": time.perf_counter() - t0}}

    entry = cache.cached(path, build, save=torch.save,
                         load=lambda p: torch.load(p, map_location="cpu", weights_only=True))
    if entry.from_cache:
        net.load_state_dict(entry.value["state_dict"])
    return net.eval(), {**entry.value["info"], "cached": entry.from_cache}

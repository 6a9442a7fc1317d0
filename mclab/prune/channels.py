"""Structured pruning: remove whole output channels, rebuilding Conv2d / BatchNorm / Linear layers smaller.

:func:`plan_channels` ranks every prunable layer's output channels by the L1 (or L2) norm of their weights and
returns a serialisable :class:`ChannelPlan`; :func:`apply_channels_` replays it, rebuilding the layer, the BatchNorm
after it and the next layer's input channels as smaller dense layers; :func:`prune_channels` does both on a copy.
Only channels that nothing else reads can go (:func:`find_channel_groups`): in a ResNet the block outputs feed the
residual additions, so the safe and standard choice is the *inner* convolution of each block (``conv1 → bn1 →
conv2`` in a BasicBlock; ``conv1`` and ``conv2`` in a Bottleneck). Chains inside an ``nn.Sequential`` (Conv → [BN,
activation, pooling] → Conv, or → Flatten → Linear, and Linear → Linear) are found too. Removing channels leaves
later BatchNorm statistics stale: :func:`recalibrate_bn_` re-estimates them. Introduced in notebook 06.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .primitives import (
    _check_amount,
    _check_choice,
    _check_int,
    _check_layers,
    _check_model,
    _config,
    _unknown_layer,
    channels_to_keep,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ChannelConfig", "ChannelGroup", "ChannelPlan", "find_channel_groups", "plan_channels", "apply_channels_",
           "prune_channels", "recalibrate_bn_"]


@dataclass(frozen=True)
class ChannelConfig:
    """Structured pruning: how many output channels each prunable layer loses, and how they are ranked."""

    amount: float = 0.5                   # share of output channels removed from each prunable layer, [0, 1)
    norm: int = 1                         # rank channels by the L1 (1) or L2 (2) norm of their weights
    layers: tuple[str, ...] | None = None  # producer layers to prune; None = every safe one (find_channel_groups)

    def __post_init__(self) -> None:
        _check_amount(self.amount)
        _check_choice(self.norm, "norm", (1, 2))
        object.__setattr__(self, "layers", _check_layers(self.layers))


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels of ``producer`` that only ``bn`` (optional) and ``consumer`` read: removable together.
    ``per_channel`` is how many consumer inputs each producer channel feeds (H × W after a Flatten, else 1)."""

    producer: str
    bn: str | None
    consumer: str
    per_channel: int = 1


_PASS_THROUGH_NAMES = ("ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU", "Hardswish", "Hardsigmoid", "Tanh", "Sigmoid",
                       "ELU", "Mish", "Dropout", "Dropout2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
                       "AdaptiveMaxPool2d", "Identity")


def _pass_through() -> tuple[type, ...]:
    return tuple(getattr(nn, n) for n in _PASS_THROUGH_NAMES)


def _blocks() -> dict[type, list[tuple[str, str, str]]]:
    """torchvision's residual blocks and their safe (producer, bn, consumer) chains."""
    from torchvision.models import resnet

    return {resnet.BasicBlock: [("conv1", "bn1", "conv2")],
            resnet.Bottleneck: [("conv1", "bn1", "conv2"), ("conv2", "bn2", "conv3")]}


def _plain(m: torch.nn.Module) -> bool:
    """A Conv2d without groups, or a Linear: its channels can be sliced freely."""
    return isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)


def _sequential_groups(prefix: str, seq: torch.nn.Sequential) -> list[ChannelGroup]:
    kids = list(seq.named_children())
    passing, out = _pass_through(), []
    for i, (pname, prod) in enumerate(kids):
        if not _plain(prod):
            continue
        bn, flat = None, False
        for cname, child in kids[i + 1:]:
            bn_type = nn.BatchNorm2d if isinstance(prod, nn.Conv2d) else nn.BatchNorm1d
            if isinstance(child, bn_type) and bn is None and not flat and child.num_features == prod.weight.shape[0]:
                bn = cname
            elif isinstance(child, nn.Flatten) and isinstance(prod, nn.Conv2d) and not flat:
                flat = True
            elif isinstance(child, passing):
                continue
            elif _plain(child):
                n_out = prod.weight.shape[0]
                conv_to_conv = isinstance(child, nn.Conv2d) and isinstance(prod, nn.Conv2d) and not flat
                to_linear = isinstance(child, nn.Linear) and (flat or isinstance(prod, nn.Linear))
                if conv_to_conv and child.in_channels == n_out:
                    out.append(ChannelGroup(prefix + pname, bn and prefix + bn, prefix + cname, 1))
                elif to_linear and child.in_features % n_out == 0:
                    per_channel = child.in_features // n_out
                    out.append(ChannelGroup(prefix + pname, bn and prefix + bn, prefix + cname, per_channel))
                break
            else:
                break  # anything else may mix channels (or feed a residual): stop
    return out


def find_channel_groups(model: torch.nn.Module) -> list[ChannelGroup]:
    """Every chain whose middle channels can be removed safely: the inner convolutions of torchvision's
    BasicBlock / Bottleneck, and producer → consumer chains inside an ``nn.Sequential``. Block outputs that
    feed a residual addition, and a model's last layer, are never producers (the output shape is kept)."""
    _check_model(model)
    blocks = _blocks()
    groups: list[ChannelGroup] = []
    for name, m in model.named_modules():
        prefix = f"{name}." if name else ""
        chains = next((c for t, c in blocks.items() if isinstance(m, t)), None)
        if chains is not None:
            for p, b, c in chains:
                if _plain(getattr(m, p)) and _plain(getattr(m, c)):
                    groups.append(ChannelGroup(prefix + p, prefix + b, prefix + c, 1))
        elif isinstance(m, nn.Sequential):
            groups += _sequential_groups(prefix, m)
    return groups


@dataclass
class ChannelPlan:
    """Which output channels each producer keeps (sorted indices): a serialisable result to replay with
    :func:`apply_channels_`."""

    amount: float
    norm: int
    groups: list[ChannelGroup]
    keep: dict[str, list[int]]            # producer name -> kept output channels
    channels: dict[str, int]              # producer name -> output channels before pruning

    @property
    def removed(self) -> int:
        return sum(self.channels[g.producer] - len(self.keep[g.producer]) for g in self.groups)

    def as_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "norm": self.norm, "groups": [asdict(g) for g in self.groups],
                "keep": self.keep, "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ChannelPlan":
        return cls(d["amount"], d["norm"], [ChannelGroup(**g) for g in d["groups"]],
                   {k: list(v) for k, v in d["keep"].items()}, dict(d["channels"]))

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame([{"producer": g.producer, "bn": g.bn, "consumer": g.consumer,
                              "channels before": self.channels[g.producer],
                              "channels after": len(self.keep[g.producer])}
                             for g in self.groups]).set_index("producer")


def plan_channels(model: torch.nn.Module, config: ChannelConfig | None = None) -> ChannelPlan:
    """Rank every safe producer's output channels by weight norm and choose the ones to keep (nothing is
    changed). ``config.layers`` restricts the producers (each must be one :func:`find_channel_groups` finds).
    Returns a :class:`ChannelPlan`."""
    cfg = _config(model, config, ChannelConfig, unmasked=True)
    groups = find_channel_groups(model)
    by_name = {g.producer: g for g in groups}
    if cfg.layers is not None:
        for name in cfg.layers:
            if name not in by_name:
                every = dict(model.named_modules())
                if name in every:
                    raise ValueError(f"layer {name!r} exists but its output channels cannot be removed safely "
                                     f"(they feed a residual addition, the model output or a layer that mixes "
                                     f"channels); removable: {list(by_name)[:6]}...")
                raise _unknown_layer(name, by_name, "channel-prunable layer")
        groups = [by_name[n] for n in cfg.layers]
    if not groups:
        raise ValueError(f"found no channels of {type(model).__name__} that can be removed safely")
    mods = dict(model.named_modules())
    keep = {g.producer: channels_to_keep(mods[g.producer].weight, cfg.amount, cfg.norm) for g in groups}
    channels = {g.producer: mods[g.producer].weight.shape[0] for g in groups}
    return ChannelPlan(cfg.amount, cfg.norm, groups, keep, channels)


def _set(model: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def _sliced(m: torch.nn.Module, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> torch.nn.Module:
    """A copy of Conv2d / Linear ``m`` with only the given output and input channels (None = all)."""
    w = m.weight.detach()
    if out_idx is not None:
        w = w.index_select(0, out_idx)
    if in_idx is not None:
        w = w.index_select(1, in_idx)
    bias = m.bias.detach() if m.bias is not None else None
    if bias is not None and out_idx is not None:
        bias = bias.index_select(0, out_idx)
    kw = {"device": w.device, "dtype": w.dtype}
    if isinstance(m, nn.Conv2d):
        new = nn.Conv2d(w.shape[1], w.shape[0], m.kernel_size, m.stride, m.padding, m.dilation, 1,
                        bias is not None, m.padding_mode, **kw)
    else:
        new = nn.Linear(w.shape[1], w.shape[0], bias is not None, **kw)
    with torch.no_grad():
        new.weight.copy_(w)
        if bias is not None:
            new.bias.copy_(bias)
    new.train(m.training)
    new.weight.requires_grad_(m.weight.requires_grad)
    return new


def _sliced_bn(bn: torch.nn.Module, idx: torch.Tensor) -> torch.nn.Module:
    new = type(bn)(len(idx), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                   track_running_stats=bn.track_running_stats, device=idx.device)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight.detach()[idx])
            new.bias.copy_(bn.bias.detach()[idx])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[idx])
            new.running_var.copy_(bn.running_var[idx])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)
    return new


def apply_channels_(model: torch.nn.Module, plan: ChannelPlan) -> torch.nn.Module:
    """Replay ``plan`` on ``model`` in place: each producer, its BatchNorm and its consumer are replaced by
    smaller dense layers holding only the kept channels. Returns ``model``."""
    _check_model(model)
    if not isinstance(plan, ChannelPlan):
        raise TypeError(f"plan must be a ChannelPlan (from plan_channels), got {type(plan).__name__}")
    for g in plan.groups:
        mods = dict(model.named_modules())  # afresh: a consumer may be the next group's producer
        for name in (g.producer, g.bn, g.consumer):
            if name is not None and name not in mods:
                raise _unknown_layer(name, mods, "layer")
        prod = mods[g.producer]
        if prod.weight.shape[0] != plan.channels[g.producer]:
            raise ValueError(f"plan expects {plan.channels[g.producer]} output channels in {g.producer!r}, "
                             f"the model has {prod.weight.shape[0]} (was it pruned already?)")
        idx = torch.tensor(plan.keep[g.producer], dtype=torch.long, device=prod.weight.device)
        in_idx = (idx[:, None] * g.per_channel + torch.arange(g.per_channel, device=idx.device)).reshape(-1)
        _set(model, g.producer, _sliced(prod, idx, None))
        if g.bn is not None:
            _set(model, g.bn, _sliced_bn(mods[g.bn], idx))
        _set(model, g.consumer, _sliced(mods[g.consumer], None, in_idx))
    return model


def prune_channels(model: torch.nn.Module, config: ChannelConfig | None = None) -> torch.nn.Module:
    """A smaller dense copy of ``model`` without the weakest output channels of every safe layer
    (:func:`plan_channels` then :func:`apply_channels_`; ``model`` itself is untouched). Output shape, ONNX
    export and ``mclab.flops.count`` work on it as on any model."""
    plan = plan_channels(model, config)
    return apply_channels_(copy.deepcopy(model), plan)


def recalibrate_bn_(model: torch.nn.Module, data: Any, *, max_images: int | None = None, batch_size: int = 128,
                    augment: float = 0.0, seed: int = 0) -> int:
    """Re-estimate every BatchNorm's running mean and variance from ``data`` (a dataset of (x, y) pairs such
    as ``mclab.data.digits("train")``, or a list of input batches), in place, without gradients.

    Removing channels changes what every later BatchNorm sees, so its stored statistics go stale and accuracy
    can collapse although the remaining weights are fine; one forward pass over training images (no labels, no
    training) puts the statistics right. Uses at most ``max_images`` images. ``augment`` distorts them first
    (``mclab.data.augment`` at that strength, seeded by ``seed``): a model trained on augmented batches holds
    the statistics of augmented images, so pass its ``TrainConfig.augment``. Returns how many BatchNorm layers
    were recalibrated."""
    _check_model(model)
    if max_images is not None:
        _check_int(max_images, "max_images", 1)
    _check_int(batch_size, "batch_size", 1)
    if isinstance(data, (list, tuple)) and data and all(isinstance(b, torch.Tensor) for b in data):
        batches = list(data)
    elif hasattr(data, "__len__") and hasattr(data, "__getitem__"):
        x = data.x if hasattr(data, "x") else torch.stack([data[i][0] for i in range(len(data))])
        batches = list(x.split(batch_size))
    else:
        raise TypeError(f"data must be a dataset of (x, y) pairs or a list of input batches, got {type(data).__name__}")
    if augment:
        from ..data import augment as distort

        g = torch.Generator().manual_seed(seed)
        batches = [distort(b, generator=g, strength=augment) for b in batches]
    if max_images is not None:
        kept, n = [], 0
        for b in batches:
            if n >= max_images:
                break
            kept.append(b[:max_images - n])
            n += len(kept[-1])
        batches = kept
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or not batches:
        return 0
    momenta = [bn.momentum for bn in bns]
    was_training = model.training
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches, not an exponential one
    model.train()
    try:
        with torch.no_grad():
            for b in batches:
                model(b)
    finally:
        for bn, mom in zip(bns, momenta, strict=True):
            bn.momentum = mom
        model.train(was_training)
    return len(bns)

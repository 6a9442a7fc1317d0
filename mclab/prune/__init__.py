"""Pruning: zero the smallest weights (unstructured), or remove whole channels (structured).

Unstructured magnitude pruning keeps a model's shapes and sets its smallest weights to zero, as masks that stay
in place while the model is fine-tuned (PyTorch's ``weight_orig × weight_mask`` reparametrisation) and are then
folded in for good: :func:`prune_` (layer-wise or one global threshold), :func:`make_permanent_`,
:func:`sparsity` (a :class:`SparsityReport` per layer and overall). A dense kernel multiplies the zeros all the
same, so the model is not faster; :func:`storage` prices the sparse formats (bitmask, CSR) that could skip them.

Structured pruning removes output channels *physically*: :func:`plan_channels` ranks every prunable
layer's output channels by the L1 (or L2) norm of their weights and returns a serialisable
:class:`ChannelPlan`; :func:`apply_channels_` replays it, rebuilding the layer, the BatchNorm after it and the
next layer's input channels as smaller dense layers; :func:`prune_channels` does both on a copy. Only channels
that nothing else reads can go: in a ResNet the block outputs feed the residual additions, so the safe and
standard choice is the *inner* convolution of each block (``conv1 → bn1 → conv2`` in a BasicBlock; ``conv1`` and
``conv2`` in a Bottleneck). Chains inside an ``nn.Sequential`` (Conv → [BN, activation, pooling] → Conv, or
→ Flatten → Linear, and Linear → Linear) are found too.

:func:`sensitivity` scans accuracy against sparsity layer by layer; :func:`iterative_prune_` alternates pruning
and fine-tuning (``mclab.models.train``) towards a final sparsity. Masks and channel choices agree with
``torch.nn.utils.prune`` (``l1_unstructured``, ``global_unstructured``, ``ln_structured``); the tests check it.
Introduced in notebook 06.

The package: :mod:`~mclab.prune.primitives` (checks, masks, channel scores) → :mod:`~mclab.prune.masks`
(unstructured) and :mod:`~mclab.prune.channels` (structured) → :mod:`~mclab.prune.schedule` (scans and
schedules). Everything public is re-exported here: ``from mclab import prune; prune.prune_(model, ...)``.
"""
from __future__ import annotations

from .channels import (
    ChannelConfig,
    ChannelGroup,
    ChannelPlan,
    apply_channels_,
    find_channel_groups,
    plan_channels,
    prune_channels,
    recalibrate_bn_,
)
from .masks import PruneConfig, SparsityReport, StorageReport, make_permanent_, nonzero_macs, prune_, sparsity, storage
from .primitives import (
    channel_scores,
    channels_to_keep,
    global_magnitude_masks,
    magnitude_mask,
    magnitude_threshold,
    prunable_layers,
)
from .schedule import (
    IterativeConfig,
    IterativeResult,
    SensitivityConfig,
    SensitivityResult,
    iterative_prune_,
    sensitivity,
)

__all__ = [
    # configuration
    "PruneConfig", "ChannelConfig", "SensitivityConfig", "IterativeConfig",
    # results
    "SparsityReport", "ChannelGroup", "ChannelPlan", "SensitivityResult", "IterativeResult", "StorageReport",
    # primitives
    "magnitude_mask", "global_magnitude_masks", "magnitude_threshold", "channel_scores", "channels_to_keep",
    "prunable_layers", "find_channel_groups",
    # unstructured verbs
    "prune_", "make_permanent_", "sparsity", "storage", "nonzero_macs",
    # structured verbs
    "plan_channels", "apply_channels_", "prune_channels", "recalibrate_bn_",
    # schedules and scans
    "sensitivity", "iterative_prune_",
]

"""Models the kit uses: torchvision architectures with their published metadata.

``zoo("resnet18")`` builds a torchvision classifier with *random* weights (nothing is
downloaded — only shape and cost matter for speed and size) and carries what torchvision
publishes about the trained weights (ImageNet top-1, parameter count, file size, the
resolution it was evaluated at), so notebooks can set measured cost beside published
accuracy. Introduced in notebook 00.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["ZooModel", "zoo", "zoo_names"]


@dataclass
class ZooModel:
    """A randomly initialised torchvision model and its published metadata."""

    name: str
    module: "torch.nn.Module"
    input_shape: tuple[int, int, int, int]   # (B, C, H, W) at torchvision's evaluation resolution
    published_params: int                    # torchvision's num_params for the trained weights
    published_top1: float | None             # ImageNet-1K acc@1, percent
    published_file_mb: float | None          # size of the published checkpoint, MB
    weights: str                             # which published weights the metadata describes

    def example_inputs(self, batch: int = 1, seed: int = 0) -> "torch.Tensor":
        """A random input batch of the model's evaluation shape."""
        import torch

        if batch < 1:
            raise ValueError(f"batch={batch} must be >= 1")
        g = torch.Generator().manual_seed(seed)
        return torch.randn((batch, *self.input_shape[1:]), generator=g)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "module"}


def zoo_names() -> list[str]:
    """torchvision classification models that have published ImageNet weights metadata."""
    import torchvision
    from torchvision.models import list_models

    return sorted(list_models(module=torchvision.models))


def zoo(name: str, *, seed: int = 0) -> ZooModel:
    """Build torchvision model ``name`` in eval mode with random weights (seeded); no download."""
    import torch
    from torchvision.models import get_model, get_model_weights

    names = zoo_names()
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5) or names[:8]
        raise ValueError(f"model={name!r} is not a torchvision classifier; did you mean one of {close}?")
    weights = get_model_weights(name).DEFAULT
    meta = weights.meta
    crop = weights.transforms().crop_size[0]
    torch.manual_seed(seed)
    module = get_model(name, weights=None).eval()
    return ZooModel(
        name=name, module=module, input_shape=(1, 3, crop, crop),
        published_params=int(meta["num_params"]),
        published_top1=meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1"),
        published_file_mb=meta.get("_file_size"),
        weights=str(weights),
    )

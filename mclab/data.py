"""Datasets that work offline and deterministically.

:func:`digits` serves scikit-learn's bundled handwritten digits (1,797 8×8 images) with fixed
train / validation / test splits, upscaled to a chosen resolution; the ``"test_aug"`` split is
the test digits enlarged by seeded random affine distortions and noise into a larger, harder
evaluation set, so a one-point accuracy change is measurable. :func:`calibration_batches` draws
quantisation calibration batches from the training split; :func:`sample_images` returns the two
photographs scikit-learn ships, for latency demos; :func:`image_folder` points the same
pipeline at a folder of your own images. Nothing is downloaded. Introduced in notebook 05;
used by the pruning, distillation and low-rank notebooks.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    # datasets
    "DigitsDataset", "digits", "image_folder", "SPLITS",
    # batches and transforms
    "augment", "calibration_batches", "loader",
    # photographs
    "sample_images", "image_tensor",
]

SPLITS = ("train", "val", "test", "test_aug")
_FRACTIONS = (0.6, 0.2, 0.2)      # train / val / test, stratified per class
_SPLIT_SEED = 1797                # fixes which digit lands in which split, for everyone
_MEAN, _STD = 0.5, 0.5            # inputs are mapped from [0, 1] to [-1, 1]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class DigitsDataset:
    """A torch-style dataset held in memory: ``x`` (N, 1, size, size) float32 in [-1, 1], ``y`` (N,) int64."""

    x: "torch.Tensor"
    y: "torch.Tensor"
    split: str
    size: int

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int) -> tuple["torch.Tensor", "torch.Tensor"]:
        return self.x[i], self.y[i]

    def loader(self, batch_size: int = 128, *, shuffle: bool = False, seed: int = 0):
        """A :class:`torch.utils.data.DataLoader` over this dataset (seeded shuffling)."""
        return loader(self, batch_size=batch_size, shuffle=shuffle, seed=seed)

    def as_dict(self) -> dict[str, Any]:
        return {"split": self.split, "size": self.size, "n": len(self),
                "class_counts": np.bincount(self.y.numpy(), minlength=10).tolist()}


def _check_size(size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 512:
        raise ValueError(f"size={size!r} must be an int pixel size from 8 to 512")


def _split_indices(y: np.ndarray) -> dict[str, np.ndarray]:
    """Stratified, fixed split of the 1,797 digits into train / val / test indices."""
    rng = np.random.default_rng(_SPLIT_SEED)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = round(_FRACTIONS[0] * len(idx))
        n_val = round(_FRACTIONS[1] * len(idx))
        parts["train"].append(idx[:n_train])
        parts["val"].append(idx[n_train:n_train + n_val])
        parts["test"].append(idx[n_train + n_val:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def augment(x: "torch.Tensor", *, generator: "torch.Generator", strength: float = 1.0) -> "torch.Tensor":
    """Random affine distortion (rotation ±15°, scale ±15 %, shear, shift ±12 %) plus Gaussian
    noise, scaled by ``strength``; ``x`` is (N, C, H, W) in [-1, 1]. Returns a new tensor."""
    import torch
    import torch.nn.functional as F

    if strength < 0:
        raise ValueError(f"strength={strength} must be >= 0")
    n = x.shape[0]

    def u(scale: float) -> torch.Tensor:  # uniform in [-scale, scale] * strength
        return (torch.rand(n, generator=generator) * 2 - 1) * scale * strength

    ang, scl, shear = u(np.pi / 12), 1 + u(0.15), u(0.15)
    cos, sin = torch.cos(ang) / scl, torch.sin(ang) / scl
    theta = torch.stack([torch.stack([cos, -sin + shear, u(0.12)], 1),
                         torch.stack([sin, cos, u(0.12)], 1)], 1)          # (N, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # background stays -1
    out = out + 0.15 * strength * torch.randn(out.shape, generator=generator)
    return out.clamp_(-1, 1)


def digits(split: str = "train", *, size: int = 32, copies: int = 4, seed: int = 0) -> DigitsDataset:
    """scikit-learn's handwritten digits as a :class:`DigitsDataset` at ``size``×``size`` pixels.

    ``split`` is ``"train"`` (1,078 images), ``"val"`` (359), ``"test"`` (360) or ``"test_aug"``:
    ``copies`` seeded random distortions of every test image (``copies × 360`` images; ``seed``
    picks the distortions). The splits are stratified and fixed.
    """
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; allowed: {SPLITS}")
    _check_size(size)
    if split == "test_aug" and (not isinstance(copies, int) or copies < 1):
        raise ValueError(f"copies={copies!r} must be an int >= 1")
    bunch = load_digits()
    idx = _split_indices(bunch.target)["test" if split == "test_aug" else split]
    img = torch.from_numpy(bunch.images[idx].astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    x = (x - _MEAN) / _STD
    y = torch.from_numpy(bunch.target[idx].astype(np.int64))
    if split == "test_aug":
        g = torch.Generator().manual_seed(10_000 + seed)
        x = torch.cat([augment(x, generator=g) for _ in range(copies)])
        y = y.repeat(copies)
    return DigitsDataset(x.contiguous(), y, split, size)


def loader(dataset: Any, batch_size: int = 128, *, shuffle: bool = False, seed: int = 0):
    """A DataLoader over ``dataset`` with a seeded generator, so shuffled order is reproducible."""
    import torch
    from torch.utils.data import DataLoader

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an int >= 1")
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


def calibration_batches(n: int = 8, *, batch_size: int = 32, size: int = 32, seed: int = 0) -> list["torch.Tensor"]:
    """``n`` input batches of (``batch_size``, 1, size, size) drawn without replacement from the training
    split, for quantisation calibration (never from the test data). Fewer batches when the split runs out."""
    import torch

    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be an int >= 1")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an int >= 1")
    ds = digits("train", size=size)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    return [ds.x[order[i:i + batch_size]] for i in range(0, min(n * batch_size, len(ds)), batch_size)]


def image_folder(path: str | Path, *, size: int = 32, grayscale: bool = True):
    """Your own images in ``path/<class>/*.png|jpg`` as a torchvision ImageFolder, transformed like
    :func:`digits` (grayscale, ``size``×``size``, values in [-1, 1]); use it with :func:`loader`."""
    from torchvision import datasets, transforms

    _check_size(size)
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"path={str(path)!r} is not a directory of class folders")
    steps = [transforms.Grayscale(1)] if grayscale else []
    steps += [transforms.Resize((size, size)), transforms.ToTensor(),
              transforms.Normalize([_MEAN] * (1 if grayscale else 3), [_STD] * (1 if grayscale else 3))]
    return datasets.ImageFolder(str(root), transform=transforms.Compose(steps))


def sample_images() -> dict[str, np.ndarray]:
    """The two photographs bundled with scikit-learn (``china``, ``flower``): (427, 640, 3) uint8 RGB."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    return {Path(f).stem: img for f, img in zip(bunch.filenames, bunch.images, strict=True)}


def image_tensor(image: np.ndarray, size: int = 224) -> "torch.Tensor":
    """An (H, W, 3) uint8 photograph as a (1, 3, size, size) ImageNet-normalised float tensor
    (shorter side resized to ``size``, then centre-cropped)."""
    import torch
    import torch.nn.functional as F

    _check_size(size)
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"image must be an (H, W, 3) array; got {getattr(image, 'shape', type(image))}")
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    h, w = t.shape[-2:]
    k = size / min(h, w)
    t = F.interpolate(t, size=(max(size, round(h * k)), max(size, round(w * k))), mode="bilinear",
                      align_corners=False, antialias=True)
    top, left = (t.shape[-2] - size) // 2, (t.shape[-1] - size) // 2
    t = t[..., top:top + size, left:left + size]
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((t - mean) / std).contiguous()

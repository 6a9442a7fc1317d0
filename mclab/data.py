"""Datasets that work offline and deterministically.

:func:`digits` serves scikit-learn's bundled handwritten digits (1,797 8×8 images) with fixed
train / validation / test splits, upscaled to a chosen resolution; the ``"test_aug"`` split is
the test digits enlarged by seeded random affine distortions and noise into a larger, harder
evaluation set, so a one-point accuracy change is measurable (``"val_aug"`` does the same to the
validation digits, for model selection that never touches the test images). :func:`calibration_batches` draws
quantisation calibration batches from the training split; :func:`sample_images` returns the two
photographs scikit-learn ships, for latency demos; :func:`image_folder` points the same
pipeline at a folder of your own images; :func:`text_images` renders text lines and pages with
ground-truth strings and boxes and a camera's distortions, for OCR (notebook 18); :func:`python_docs` reads the
text of Python's reference documentation that the kit ships in ``data/`` (the LLM's corpus, the OCR pages' words).
Nothing is downloaded, and nothing depends on the interpreter's version (``data/README.md`` lists what each depends on).
Introduced in notebook 05; used by the pruning, distillation and low-rank notebooks.
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
    "check_size", "augment", "calibration_batches", "loader",
    # photographs
    "sample_images", "image_tensor",
    # rendered text for OCR (notebook 18)
    "TextImage", "text_images", "cjk_font", "TEXT_KINDS",
    # shipped text
    "python_docs", "PYTHON_DOCS", "PYTHON_DOCS_SHA256",
]

SPLITS = ("train", "val", "test", "test_aug", "val_aug")
_FRACTIONS = (0.6, 0.2, 0.2)      # train / val / test, stratified per class
_SPLIT_SEED = 1797                # fixes which digit lands in which split, for everyone
_MEAN, _STD = 0.5, 0.5            # inputs are mapped from [0, 1] to [-1, 1]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Python 3.11.7's ``pydoc_data.topics`` as JSON: the same bytes on every Python (each version ships other docs)
PYTHON_DOCS = Path(__file__).resolve().parents[1] / "data" / "pydoc_topics.json"
PYTHON_DOCS_SHA256 = "e81a4f3fc71fafbd0d092e58804c106cd251e4580938d87221636fe846f18501"


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


def check_size(size: int) -> None:
    """Raise ``ValueError`` unless ``size`` is an int image side length in pixels from 8 to 512, the range every
    dataset here can be rendered at; configs that carry an image size (``models.TrainConfig``, the supernet's)
    check it with this at their boundary. Returns None."""
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

    ``split`` is ``"train"`` (1,078 images), ``"val"`` (359), ``"test"`` (360), ``"test_aug"``:
    ``copies`` seeded random distortions of every test image (``copies × 360`` images; ``seed``
    picks the distortions), or ``"val_aug"``: the same for the validation images (``copies × 359``;
    a search or selection set, disjoint from the test images; notebook 19). The splits are
    stratified and fixed.
    """
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    if split not in SPLITS:
        raise ValueError(f"split={split!r} is unknown; allowed: {SPLITS}")
    check_size(size)
    aug = split.endswith("_aug")
    if aug and (not isinstance(copies, int) or isinstance(copies, bool) or copies < 1):
        raise ValueError(f"copies={copies!r} must be an int >= 1")
    bunch = load_digits()
    idx = _split_indices(bunch.target)[split.removesuffix("_aug")]
    img = torch.from_numpy(bunch.images[idx].astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
    x = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    x = (x - _MEAN) / _STD
    y = torch.from_numpy(bunch.target[idx].astype(np.int64))
    if aug:  # distinct distortion streams for the two splits (test_aug's unchanged)
        g = torch.Generator().manual_seed((10_000 if split == "test_aug" else 20_000) + seed)
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

    check_size(size)
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

    check_size(size)
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


# ----------------------------------------------------------------------------- rendered text (OCR, notebook 18)

TEXT_KINDS = ("line", "document")
_LATIN_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
                "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")
# Where Debian / Ubuntu put the CJK fonts the kit looks for (fonts-wqy-zenhei, fonts-noto-cjk)
_CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
              "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
              "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")


@dataclass
class TextImage:
    """One rendered image with its ground truth: ``lines[i]`` is drawn inside ``boxes[i]``."""

    image: np.ndarray                # (H, W, 3) uint8 RGB
    lines: list[str]                 # ground-truth text, top to bottom
    boxes: np.ndarray                # (L, 4, 2) float32 corners (top-left, top-right, bottom-right, bottom-left), px
    font: str                        # the font file's name
    distortions: dict[str, float]    # what the camera added: rotation_deg, blur_sigma, noise_std, jpeg_quality, …

    def as_dict(self) -> dict[str, Any]:
        return {"shape": list(self.image.shape), "lines": self.lines, "boxes": self.boxes.round(1).tolist(),
                "font": self.font, "distortions": self.distortions}


def cjk_font() -> str | None:
    """The path of an installed CJK font (WenQuanYi Zen Hei or Noto CJK), or None when there is none."""
    import shutil
    import subprocess

    for f in _CJK_FONTS:
        if Path(f).is_file():
            return f
    if shutil.which("fc-list"):
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=30).stdout
        found = sorted(ln.split(":")[0].strip() for ln in out.splitlines() if ln.strip())
        return found[0] if found else None
    return None


def python_docs(path: str | Path | None = None) -> dict[str, str]:
    """The topics of Python's reference documentation (``{topic: text}``, 79 topics, ~0.47 MB), read from
    ``data/pydoc_topics.json`` (``path`` overrides) after checking its SHA-256; raises ``ValueError`` when the file's
    bytes are not the shipped ones. Used by the LLM's corpus (notebook 13) and the OCR pages' words (notebook 18)."""
    import hashlib
    import json

    path = Path(PYTHON_DOCS if path is None else path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: it ships with the kit's repository (git checkout -- {path.name})")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != PYTHON_DOCS_SHA256:
        raise ValueError(f"{path} has SHA-256 {digest}, expected {PYTHON_DOCS_SHA256}: the file was changed "
                         f"(restore it with `git checkout -- data/{path.name}`; a converted line ending is enough)")
    return json.loads(raw.decode("utf-8"))


def _latin_words() -> list[str]:
    """Words from the text of Python's reference documentation (:func:`python_docs`): letters and digits only,
    2-12 characters, sorted so the list is the same everywhere."""
    import re

    topics = python_docs()
    text = " ".join(topics[k] for k in sorted(topics))
    return sorted(set(re.findall(r"\b[A-Za-z][a-z]{1,11}\b|\b[0-9]{2,4}\b", text)))


def _cjk_chars() -> list[str]:
    """The 3,755 most common Chinese characters (GB 2312 level 1), read from the codec that ships with Python."""
    return [bytes([hi, lo]).decode("gb2312") for hi in range(0xB0, 0xD8) for lo in range(0xA1, 0xFF)
            if not (hi == 0xD7 and lo > 0xF9)]


def _camera(img: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, strength: float,
            bg: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """What a phone camera adds, each drawn with ``rng`` and scaled by ``strength`` (0: nothing): a small rotation
    (boxes rotated alike), uneven light, lower contrast, blur, sensor noise and JPEG compression."""
    import cv2

    if strength == 0:
        return img, boxes, {}
    h, w = img.shape[:2]
    d = {"rotation_deg": float(rng.uniform(-3, 3) * strength), "light_drop": float(rng.uniform(0, 0.35) * strength),
         "contrast": float(1 - rng.uniform(0, 0.45) * strength), "blur_sigma": float(rng.uniform(0, 1.0) * strength),
         "noise_std": float(rng.uniform(0, 8) * strength),
         "jpeg_quality": int(round(95 - rng.uniform(0, 45) * strength))}
    m = cv2.getRotationMatrix2D((w / 2, h / 2), d["rotation_deg"], 1.0)
    img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(bg, bg, bg))
    boxes = (boxes @ m[:, :2].T + m[:, 2]).astype(np.float32)  # (L, 4, 2)
    f = img.astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)  # 0 … 1 across the page
    f = f * (1 - d["light_drop"] * ramp)[..., None]
    f = 128 + (f - 128) * d["contrast"]
    if d["blur_sigma"] > 0.05:
        f = cv2.GaussianBlur(f, (0, 0), d["blur_sigma"])
    f = f + rng.normal(0, d["noise_std"], f.shape)
    img = np.clip(f, 0, 255).astype(np.uint8)
    ok, enc = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, d["jpeg_quality"]])
    img = np.ascontiguousarray(cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1])
    return img, boxes, d


def _render_one(rng: np.random.Generator, kind: str, script: str, words: list[str], strength: float,
                cjk: str | None) -> TextImage:
    from matplotlib import get_data_path
    from PIL import Image, ImageDraw, ImageFont

    if script == "cjk":
        font_file, size = cjk, int(rng.integers(20, 33))
    else:
        font_file = str(Path(get_data_path()) / "fonts" / "ttf" / _LATIN_FONTS[rng.integers(len(_LATIN_FONTS))])
        size = int(rng.integers(18, 33))
    font = ImageFont.truetype(font_file, size)
    bg, ink = int(rng.integers(215, 256)), int(rng.integers(0, 70))
    n_lines = 1 if kind == "line" else int(rng.integers(3, 7))
    width = int(rng.integers(480, 641))
    margin = int(rng.integers(16, 41))

    def line_text() -> str:
        if script == "cjk":
            return "".join(words[i] for i in rng.integers(0, len(words), int(rng.integers(4, 13))))
        out: list[str] = []
        for i in rng.integers(0, len(words), 12):
            cand = " ".join([*out, words[i]])
            if out and (font.getlength(cand) > width - 2 * margin or len(out) >= int(rng.integers(2, 8))):
                break
            out.append(words[i])
        return " ".join(out)

    texts = [line_text() for _ in range(n_lines)]
    step = int(size * rng.uniform(1.7, 2.3))
    if kind == "line":
        width = int(max(font.getlength(texts[0]) + 2 * margin, 2 * size))
        height = int(size * rng.uniform(2.0, 2.8))
        top = (height - size) // 2
    else:
        height = max(int(width * rng.uniform(0.6, 0.8)), margin * 2 + step * n_lines)
        top = margin
    page = Image.new("RGB", (width, height), (bg, bg, bg))
    draw = ImageDraw.Draw(page)
    boxes = []
    for i, t in enumerate(texts):
        x, y = margin, top + i * step
        draw.text((x, y), t, font=font, fill=(ink, ink, ink))
        x0, y0, x1, y1 = draw.textbbox((x, y), t, font=font)
        boxes.append([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    img, box_arr, d = _camera(np.asarray(page), np.asarray(boxes, np.float32), rng, strength, bg)
    return TextImage(img, texts, box_arr, Path(font_file).name, d)


def text_images(n: int, seed: int = 0, *, kind: str = "document", distortion: float = 1.0,
                script: str = "latin") -> list[TextImage]:
    """``n`` rendered text images with ground truth, the same for the same arguments on every machine.

    ``kind="line"``: one line of text per image; ``"document"``: a page 480-640 px wide with 3-6 lines. Latin
    text uses the DejaVu fonts bundled with matplotlib (sans, serif, mono; regular and bold; 18-32 px) and words
    from Python's own documentation (:func:`python_docs`); ``script="cjk"`` writes Chinese lines of common characters
    (GB 2312 level 1, from Python's codec) with an installed CJK font (:func:`cjk_font`; a ``ValueError`` says
    how to install one when there is none). ``distortion`` (0 … 1) scales what a camera adds: rotation up to
    ±3°, uneven light, lower contrast, blur, noise, JPEG compression; 0 gives clean renders. Returns a list of
    :class:`TextImage` (RGB uint8 image, lines, (L, 4, 2) boxes in pixels). Introduced in notebook 18."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n={n!r} must be an int >= 1")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an int >= 0")
    if kind not in TEXT_KINDS:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {list(TEXT_KINDS)}")
    if not isinstance(distortion, (int, float)) or isinstance(distortion, bool) or not 0 <= distortion <= 1:
        raise ValueError(f"distortion={distortion!r} must be a number in [0, 1] (0: clean renders)")
    if script not in ("latin", "cjk"):
        raise ValueError(f"script={script!r} is unknown; allowed: ['latin', 'cjk']")
    cjk = cjk_font() if script == "cjk" else None
    if script == "cjk" and cjk is None:
        raise ValueError("script='cjk' needs a CJK font and none is installed: apt-get install fonts-wqy-zenhei "
                         "(or fonts-noto-cjk)")
    words = _cjk_chars() if script == "cjk" else _latin_words()
    rng = np.random.default_rng([seed, TEXT_KINDS.index(kind), 1 if script == "cjk" else 0])
    return [_render_one(rng, kind, script, words, float(distortion), cjk) for _ in range(n)]

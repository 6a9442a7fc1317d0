"""English lines the kit's own pages never show the models: other faces, other sizes, some blurred
(:func:`unseen_lines`). :func:`mclab.data.text_images` renders in six DejaVu faces (Sans, Serif, Mono; regular and
bold) at 18-32 px; these lines use the italic and oblique DejaVu faces and the STIX faces bundled with matplotlib,
plus every other Latin font ``fc-list`` finds on the machine (condensed, extra-light, …), at 14-17 px and 34-44 px,
every third line blurred. The text is the Zen of Python (``this``, shipped with Python) and five pangrams. Nothing is
downloaded. Scored with :func:`mclab.ocr.reading_cer` (everything read, in reading order, spaces ignored).
Introduced in notebook 18.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["unseen_lines", "unseen_fonts", "UNSEEN_SIZES"]

UNSEEN_SIZES = (14, 15, 16, 17, 34, 36, 38, 40, 42, 44)  # px; the kit's pages use 18-32
# matplotlib's own faces that mclab.data.text_images never uses (it renders DejaVu Sans/Serif/Mono regular and bold)
_MPL_FACES = ("DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono-Oblique.ttf",
              "DejaVuSansMono-BoldOblique.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
              "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf")
_PANGRAMS = ("The quick brown fox jumps over the lazy dog.", "Pack my box with five dozen liquor jugs.",
             "Sphinx of black quartz, judge my vow.", "How vexingly quick daft zebras jump!",
             "Jackdaws love my big sphinx of quartz.")


def _zen() -> list[str]:
    """The 19 lines of the Zen of Python, decoded from the ``this`` module (which prints them when imported)."""
    import codecs

    with contextlib.redirect_stdout(io.StringIO()):
        import this
    return [ln for ln in codecs.decode(this.s, "rot13").splitlines()[2:] if ln.strip()]


def unseen_fonts() -> list[str]:
    """Font files the kit's pages never use: matplotlib's italic / oblique DejaVu and STIX faces, then (sorted) every
    other ``.ttf`` / ``.otf`` that ``fc-list :lang=en`` lists, by file name not already taken."""
    from matplotlib import get_data_path

    from ..data import _LATIN_FONTS

    ttf = Path(get_data_path()) / "fonts" / "ttf"
    out = [str(ttf / f) for f in _MPL_FACES if (ttf / f).is_file()]
    if shutil.which("fc-list"):
        listed = subprocess.run(["fc-list", ":lang=en", "file"], capture_output=True, text=True, timeout=30).stdout
        seen = set(_MPL_FACES) | set(_LATIN_FONTS)
        for f in sorted({ln.split(":")[0].strip() for ln in listed.splitlines() if ln.strip()}):
            if Path(f).name not in seen and Path(f).suffix.lower() in (".ttf", ".otf"):
                out.append(f)
                seen.add(Path(f).name)
    return out


def unseen_lines(n: int = 24, seed: int = 0, *, fonts: list[str] | None = None) -> list[Any]:
    """``n`` single-line images of English text in faces and sizes :func:`mclab.data.text_images` never uses
    (:func:`unseen_fonts`, :data:`UNSEEN_SIZES`): line ``i`` is text ``i`` (the Zen of Python, then five pangrams,
    cycled) in font ``i`` (cycled) at a size drawn from ``seed``; every third line is blurred (Gaussian, sigma
    0.6-1.1 px). Returns :class:`mclab.data.TextImage` objects (RGB uint8, one line, its ink box; ``distortions``
    holds ``size_px`` and ``blur_sigma``)."""
    import cv2
    from PIL import Image, ImageDraw, ImageFont

    from ..data import TextImage

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n={n!r} must be an int >= 1")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an int >= 0")
    fonts = list(fonts) if fonts is not None else unseen_fonts()
    if not fonts:
        raise ValueError("no fonts to render with; pass fonts=[paths of .ttf files]")
    texts = _zen() + list(_PANGRAMS)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        text, file = texts[i % len(texts)], fonts[i % len(fonts)]
        size = UNSEEN_SIZES[int(rng.integers(len(UNSEEN_SIZES)))]
        font = ImageFont.truetype(file, size)
        margin = int(rng.integers(10, 30))
        width, height = int(font.getlength(text) + 2 * margin), int(size * rng.uniform(2.0, 2.6))
        bg, ink = int(rng.integers(225, 256)), int(rng.integers(0, 60))
        page = Image.new("RGB", (width, height), (bg, bg, bg))
        draw = ImageDraw.Draw(page)
        y = (height - size) // 2
        draw.text((margin, y), text, font=font, fill=(ink, ink, ink))
        x0, y0, x1, y1 = draw.textbbox((margin, y), text, font=font)
        img, blur = np.asarray(page), 0.0
        if i % 3 == 2:
            blur = float(rng.uniform(0.6, 1.1))
            img = np.ascontiguousarray(cv2.GaussianBlur(img, (0, 0), blur))
        box = np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], np.float32)
        out.append(TextImage(img, [text], box, Path(file).name, {"size_px": float(size), "blur_sigma": blur}))
    return out

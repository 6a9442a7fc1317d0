"""What the mclab.ocr tests share: a quick configuration, its loaded pipeline and a few clean rendered lines."""
from __future__ import annotations

import pytest

pytest.importorskip("rapidocr")

from mclab import data, ocr  # noqa: E402


@pytest.fixture(scope="session")
def fast() -> ocr.OCRConfig:
    """The page's own size (longer side <= 960 px) and two threads: RapidOCR's pipeline, quicker."""
    return ocr.OCRConfig(det_limit_type="max", det_limit_side=960, threads=2)


@pytest.fixture(scope="session")
def pipe(fast):
    return ocr.load(fast)


@pytest.fixture(scope="session")
def lines():
    return data.text_images(3, 5, kind="line", distortion=0)

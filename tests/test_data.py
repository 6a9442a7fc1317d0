from __future__ import annotations

import numpy as np
import pytest
import torch

from mclab import data


def test_splits_are_fixed_stratified_and_disjoint():
    sets = {s: data.digits(s, size=8) for s in ("train", "val", "test")}
    assert [len(sets[s]) for s in ("train", "val", "test")] == [1078, 359, 360]
    assert sum(len(d) for d in sets.values()) == 1797
    for d in sets.values():
        counts = d.as_dict()["class_counts"]
        assert len(counts) == 10 and min(counts) > 0.9 * len(d) / 10  # stratified: every class, balanced
    # disjoint: no 8x8 image (as bytes, with its label) appears in two splits ... except true duplicates in sklearn
    keys = {s: {(d.x[i].numpy().tobytes(), int(d.y[i])) for i in range(len(d))} for s, d in sets.items()}
    assert len(keys["train"] & keys["test"]) <= 2 and len(keys["val"] & keys["test"]) <= 2
    again = data.digits("test", size=8)
    assert torch.equal(again.x, sets["test"].x) and torch.equal(again.y, sets["test"].y)


def test_resolution_range_and_dtype():
    d = data.digits("val", size=32)
    assert d.x.shape == (359, 1, 32, 32) and d.x.dtype == torch.float32 and d.y.dtype == torch.int64
    assert d.x.min() >= -1 and d.x.max() <= 1 and d.x.min() == -1  # background is -1
    x, y = d[0]
    assert x.shape == (1, 32, 32) and 0 <= int(y) <= 9


def test_augmented_test_set_is_larger_seeded_and_different():
    base = data.digits("test", size=16)
    aug = data.digits("test_aug", size=16, copies=3)
    assert len(aug) == 3 * len(base) and torch.equal(aug.y[: len(base)], base.y)
    assert torch.equal(aug.x, data.digits("test_aug", size=16, copies=3).x)
    assert not torch.equal(aug.x, data.digits("test_aug", size=16, copies=3, seed=1).x)
    assert (aug.x[: len(base)] - base.x).abs().mean() > 0.05
    assert aug.x.min() >= -1 and aug.x.max() <= 1


def test_augmented_validation_set_distorts_val_not_test():
    val, test = data.digits("val", size=8), data.digits("test", size=8)
    aug = data.digits("val_aug", size=8, copies=2)
    assert len(aug) == 2 * len(val) and torch.equal(aug.y, val.y.repeat(2)) and aug.split == "val_aug"
    assert torch.equal(aug.x, data.digits("val_aug", size=8, copies=2).x)            # seeded
    assert not torch.equal(aug.x, data.digits("val_aug", size=8, copies=2, seed=1).x)
    assert (aug.x[: len(val)] - val.x).abs().mean() > 0.05
    # disjoint from the test images: no validation image equals a test image (the splits share none)
    val_rows, test_rows = {t.numpy().tobytes() for t in val.x}, {t.numpy().tobytes() for t in test.x}
    assert not val_rows & test_rows and "val_aug" in data.SPLITS


def test_augment_strength_zero_is_identity():
    x = data.digits("test", size=16).x[:8]
    out = data.augment(x, generator=torch.Generator().manual_seed(0), strength=0.0)
    assert torch.allclose(out, x, atol=1e-5)
    with pytest.raises(ValueError, match="strength"):
        data.augment(x, generator=torch.Generator(), strength=-1)


def test_calibration_batches_come_from_train_and_are_seeded():
    b = data.calibration_batches(3, batch_size=16, size=16)
    assert len(b) == 3 and all(t.shape == (16, 1, 16, 16) for t in b)
    assert all(torch.equal(u, v) for u, v in zip(b, data.calibration_batches(3, batch_size=16, size=16), strict=True))
    train = {t.numpy().tobytes() for t in data.digits("train", size=16).x}
    assert all(t.numpy().tobytes() in train for t in b[0])
    assert len(data.calibration_batches(100, batch_size=500, size=8)) == 3  # 1,078 images run out


def test_loader_is_reproducible():
    d = data.digits("val", size=8)
    first = [y for _, y in d.loader(64, shuffle=True, seed=3)]
    again = [y for _, y in d.loader(64, shuffle=True, seed=3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True)) and sum(len(y) for y in first) == 359


def test_sample_images_and_image_tensor():
    imgs = data.sample_images()
    assert set(imgs) == {"china", "flower"} and imgs["china"].shape == (427, 640, 3) and imgs["china"].dtype == np.uint8
    t = data.image_tensor(imgs["flower"], 224)
    assert t.shape == (1, 3, 224, 224) and t.dtype == torch.float32 and abs(float(t.mean())) < 3


def test_image_folder_reads_your_own_images(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((20, 30, 3), 60 * i + (c == "dog") * 100, np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = data.image_folder(tmp_path, size=16)
    assert len(ds) == 4 and ds.classes == ["cat", "dog"]
    x, y = ds[3]
    assert x.shape == (1, 16, 16) and y == 1 and -1 <= float(x.min()) <= float(x.max()) <= 1


@pytest.mark.parametrize("call, match", [
    (lambda: data.digits("holdout"), "split='holdout'"),
    (lambda: data.digits("train", size=4), "size=4"),
    (lambda: data.digits("train", size=True), "size=True"),
    (lambda: data.check_size(513), "size=513 must be an int pixel size from 8 to 512"),
    (lambda: data.digits("test_aug", copies=0), "copies=0"),
    (lambda: data.digits("val_aug", copies=True), "copies=True"),
    (lambda: data.calibration_batches(0), "n=0"),
    (lambda: data.calibration_batches(2, batch_size=0), "batch_size=0"),
    (lambda: data.loader(data.digits("val", size=8), batch_size=0), "batch_size=0"),
    (lambda: data.image_folder("/nonexistent/folder"), "not a directory"),
    (lambda: data.image_tensor(np.zeros((10, 10), np.uint8)), "H, W, 3"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------- rendered text (notebook 18)


def test_text_images_are_deterministic_with_boxes_around_their_lines():
    a, b = data.text_images(2, 3), data.text_images(2, 3)
    assert all(np.array_equal(x.image, y.image) and x.lines == y.lines for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0].image, data.text_images(1, 4)[0].image)
    for t in a:
        h, w, c = t.image.shape
        assert c == 3 and t.image.dtype == np.uint8 and 480 <= w <= 640 and 3 <= len(t.lines) <= 6
        assert t.boxes.shape == (len(t.lines), 4, 2) and all(ln.strip() for ln in t.lines)
        assert (t.boxes[..., 0] >= 0).all() and (t.boxes[..., 0] <= w).all() and (t.boxes[..., 1] <= h).all()
        assert abs(t.distortions["rotation_deg"]) <= 3 and 50 <= t.distortions["jpeg_quality"] <= 95
        top, bottom = t.boxes[0, :, 1].mean(), t.boxes[-1, :, 1].mean()
        assert top < bottom  # lines run top to bottom
        x0, y0 = t.boxes[0].min(axis=0).astype(int)
        x1, y1 = t.boxes[0].max(axis=0).astype(int)
        assert t.image[y0:y1, x0:x1].min() < t.image.mean() - 40  # ink inside the first box


def test_clean_lines_are_undistorted_single_lines():
    (t,) = data.text_images(1, 0, kind="line", distortion=0)
    assert t.distortions == {} and len(t.lines) == 1 and t.image.shape[0] < 100
    x0, y0 = t.boxes[0][0]
    assert float(x0) == int(x0) and float(y0) == int(y0)  # not rotated: the boxes are the renderer's own


def test_cjk_lines_need_a_font():
    if data.cjk_font() is None:
        with pytest.raises(ValueError, match="fonts-wqy-zenhei"):
            data.text_images(1, 0, script="cjk")
    else:
        (t,) = data.text_images(1, 0, kind="line", script="cjk", distortion=0)
        assert all("\u4e00" <= ch <= "\u9fff" for ch in t.lines[0]) and 4 <= len(t.lines[0]) <= 12


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "n=0"), ({"n": 1, "seed": -1}, "seed=-1"), ({"n": 1, "kind": "page"}, "kind='page'"),
    ({"n": 1, "distortion": 1.5}, "distortion=1.5"), ({"n": 1, "script": "greek"}, "script='greek'"),
])
def test_text_images_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.text_images(**kwargs)


# ----------------------------------------------------------------------------- the same data on every Python

def _sha(*parts) -> str:
    """First 16 hex digits of the SHA-256 of arrays (their raw bytes, C order) and byte strings, in order."""
    import hashlib

    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else np.ascontiguousarray(p).tobytes())
    return h.hexdigest()[:16]


def _text(kind: str, distortion: float) -> str:
    import json

    ims = data.text_images(3, seed=0, kind=kind, distortion=distortion)
    return _sha(*[t.image for t in ims], *[t.boxes for t in ims], json.dumps([t.lines for t in ims]).encode())


# What every dataset the kit builds hashes to, identical on Python 3.11, 3.12 and 3.13 (data/README.md lists what
# each depends on: the pinned packages, the seeds, the text in data/, never the interpreter). A change here is a
# change of every number downstream: update a constant only with the reason in the commit.
FINGERPRINTS = {
    "digits train 32 px": ("703cb072aab061fa", lambda: _sha(*_xy(data.digits("train", size=32)))),
    "digits val 32 px": ("681a2a78e093b274", lambda: _sha(*_xy(data.digits("val", size=32)))),
    "digits test 32 px": ("b2bc62f5458bf3b1", lambda: _sha(*_xy(data.digits("test", size=32)))),
    "digits test_aug 16 px": ("b848d6233424ea98", lambda: _sha(*_xy(data.digits("test_aug", size=16, copies=2)))),
    "digits val_aug 16 px": ("9918f4c354724ca9", lambda: _sha(*_xy(data.digits("val_aug", size=16, copies=2)))),
    "calibration batches": ("5e1e79ab8c727e4d",
                            lambda: _sha(*[b.numpy() for b in data.calibration_batches(2, batch_size=16, size=16)])),
    "sample images": ("99310b92a8963a4b", lambda: _sha(*data.sample_images().values())),
    "OCR words": ("34b78adaad173544", lambda: _sha("\n".join(data._latin_words()).encode())),
    "OCR Chinese characters": ("b2f00100fcb22309", lambda: _sha("".join(data._cjk_chars()).encode())),
    "text lines": ("4165b0e8c5b2f24a", lambda: _text("line", 1.0)),
    "text lines, clean": ("7c9835926599ff45", lambda: _text("line", 0.0)),
    "text pages": ("26000be34e9fc60e", lambda: _text("document", 1.0)),
    "text pages, clean": ("5a0480768b186435", lambda: _text("document", 0.0)),
}


def _xy(d) -> tuple[np.ndarray, np.ndarray]:
    return d.x.numpy(), d.y.numpy()


@pytest.mark.parametrize("name", FINGERPRINTS)
def test_every_dataset_is_the_same_bytes_on_every_python(name):
    expected, build = FINGERPRINTS[name]
    assert build() == expected, f"{name} changed: it must not depend on the Python version (see data/README.md)"


def test_the_shipped_python_docs_are_checked_and_not_the_interpreters():
    import hashlib

    assert hashlib.sha256(data.PYTHON_DOCS.read_bytes()).hexdigest() == data.PYTHON_DOCS_SHA256
    assert data.PYTHON_DOCS_SHA256 == "e81a4f3fc71fafbd0d092e58804c106cd251e4580938d87221636fe846f18501"
    topics = data.python_docs()
    assert len(topics) == 79 and topics["assert"].startswith('The "assert" statement')

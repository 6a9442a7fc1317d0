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
    (lambda: data.digits("test_aug", copies=0), "copies=0"),
    (lambda: data.calibration_batches(0), "n=0"),
    (lambda: data.calibration_batches(2, batch_size=0), "batch_size=0"),
    (lambda: data.loader(data.digits("val", size=8), batch_size=0), "batch_size=0"),
    (lambda: data.image_folder("/nonexistent/folder"), "not a directory"),
    (lambda: data.image_tensor(np.zeros((10, 10), np.uint8)), "H, W, 3"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()

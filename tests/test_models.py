from __future__ import annotations

import pytest
import torch

from mclab import cache, models


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "resnet18"])
def test_zoo_matches_published_metadata(name):
    zm = models.zoo(name)
    assert sum(p.numel() for p in zm.module.parameters()) == zm.published_params
    assert zm.input_shape == (1, 3, 224, 224) and zm.published_top1 > 50
    with torch.inference_mode():
        assert zm.module(zm.example_inputs(batch=2)).shape == (2, 1000)


def test_zoo_uses_evaluation_resolution_and_rejects_unknown():
    assert models.zoo("inception_v3").input_shape[-1] == 299
    with pytest.raises(ValueError, match="not a torchvision classifier"):
        models.zoo("resnet19")
    with pytest.raises(ValueError, match="batch"):
        models.zoo("resnet18").example_inputs(batch=0)


# ----------------------------------------------------------------------------- reference model, train, evaluate


@pytest.mark.parametrize("arch", sorted(models.ARCHITECTURES))
def test_architectures_take_digits(arch):
    m = models.ARCHITECTURES[arch]().eval()
    with torch.inference_mode():
        assert m(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_small_cnn_size_and_bad_width():
    n = sum(p.numel() for p in models.small_cnn(16).parameters())
    assert 0.9 * 90 * 16**2 < n < 1.1 * 90 * 16**2
    with pytest.raises(ValueError, match="width=0"):
        models.small_cnn(0)


def test_evaluate_counts_hits_and_accepts_callables():
    from mclab import data

    val = data.digits("val", size=32)
    m = models.small_cnn(8)
    r = models.evaluate(m, val, batch_size=100)
    assert r.n == 359 and r.correct.shape == (359,) and r.accuracy == r.correct.mean()
    assert r.ci95[0] <= r.accuracy <= r.ci95[1]
    # an oracle callable returning numpy logits scores 100 %
    labels = iter(val.y.split(100))
    oracle = lambda x: torch.nn.functional.one_hot(next(labels), 10).numpy()  # noqa: E731
    assert models.evaluate(oracle, val, batch_size=100).accuracy == 1.0
    with pytest.raises(TypeError, match="data must be"):
        models.evaluate(m, 3)
    with pytest.raises(TypeError, match="model must be"):
        models.evaluate(3, val)


def test_train_learns_and_is_seeded():
    cfg = models.TrainConfig(epochs=2, size=16, progress=False)
    a, b = models.small_cnn(8), models.small_cnn(8)
    ra, rb = models.train(a, cfg), models.train(b, cfg)
    assert ra.loss == rb.loss and ra.loss[-1] < ra.loss[0] and ra.val_accuracy[-1] > 0.5
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not a.training and set(ra.as_dict()) == {"config", "loss", "val_accuracy", "seconds"}


def test_train_weights_do_not_depend_on_the_callers_thread_count():
    # a runner built with threads=1 leaves torch at 1 thread; the recipe's own count must decide the weights
    cfg = models.TrainConfig(epochs=1, size=16, progress=False)
    before = torch.get_num_threads()
    trained = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            m = models.small_cnn(8)
            models.train(m, cfg)
            assert torch.get_num_threads() == n  # given back as found
            trained.append(m.state_dict())
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(p, q) for p, q in zip(*(t.values() for t in trained), strict=True))


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs=0"), ({"threads": 0}, "threads=0"), ({"lr": 0}, "lr=0"), ({"size": 4}, "size=4"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
])
def test_train_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.TrainConfig(**kwargs)


def test_reference_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("MCLAB_CACHE", str(tmp_path))
    assert cache.cache_dir() == tmp_path
    spec = models.reference_spec(fast=True, arch="lenet5")
    assert spec.path().parent == tmp_path and not spec.path().exists()
    assert spec.key() != models.reference_spec(fast=False, arch="lenet5").key()
    m1 = models.reference(fast=True, arch="lenet5", progress=False)
    assert spec.path().is_file() and not m1.training
    mtime = spec.path().stat().st_mtime_ns
    m2 = models.reference(fast=True, arch="lenet5")
    assert spec.path().stat().st_mtime_ns == mtime  # loaded, not retrained
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="arch='vgg'"):
        models.reference_spec(arch="vgg")


def test_llm_uses_the_same_cache_dir():
    import importlib

    assert importlib.import_module("mclab.llm.train").cache_dir is cache.cache_dir

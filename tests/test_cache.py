"""mclab.cache: one folder, content keys that stay what they were, an atomic write, a load when present."""
from __future__ import annotations

import hashlib
import json

import pytest

from mclab import cache


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MCLAB_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()


def test_key_is_the_sha256_of_sorted_json():
    parts = {"arch": "resnet18", "train": {"epochs": 4, "lr": 0.003}, "v": 1}
    want = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
    assert cache.key(**parts) == cache.key(v=1, train={"lr": 0.003, "epochs": 4}, arch="resnet18") == want
    assert cache.key(shape=(1, 2)) == cache.key(shape=[1, 2]) != cache.key(shape=[2, 1])
    assert cache.key(x=object) == cache.key(x=str(object))  # what JSON cannot hold is written as its str
    assert cache.digest([b"ab", b"c"]) == hashlib.sha256(b"abc").hexdigest()[:12]


def test_reference_and_supernet_keys_are_unchanged():
    """Files cached before mclab.cache existed are found again: the keys are computed as they were."""
    from dataclasses import asdict

    from mclab import models, nas

    spec = models.reference_spec(fast=True)
    blob = json.dumps({"arch": spec.arch, "train": spec.train.key(), "v": 1}, sort_keys=True)
    assert spec.key() == hashlib.sha256(blob.encode()).hexdigest()[:12]
    cfg, train = nas.SupernetConfig(), nas.SupernetTrainConfig()
    blob = json.dumps({"net": asdict(cfg), "train": asdict(train), "v": 1}, sort_keys=True, default=list)
    assert cache.key(net=asdict(cfg), train=asdict(train), v=1) == hashlib.sha256(blob.encode()).hexdigest()[:12]


def test_cached_builds_once_then_loads(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return "value"

    def save(value, path):
        assert path != tmp_path / "a.txt" and path.parent == tmp_path  # a temporary file beside the target
        path.write_text(value)

    first = cache.cached(tmp_path / "a.txt", build, save=save, load=lambda p: p.read_text())
    second = cache.cached(tmp_path / "a.txt", build, save=save, load=lambda p: p.read_text() + " (loaded)")
    assert (first.value, first.from_cache, second.value, second.from_cache) == ("value", False, "value (loaded)", True)
    assert calls == [1] and [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary file left
    assert second.as_dict() == {"path": str(tmp_path / "a.txt"), "from_cache": True}


def test_a_failed_build_leaves_no_file(tmp_path):
    def build():
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        cache.cached(tmp_path / "b.pt", build, save=lambda v, p: None, load=lambda p: None)
    assert list(tmp_path.iterdir()) == []

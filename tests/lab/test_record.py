from __future__ import annotations

import json

import numpy as np
import pytest

import mclab
from mclab.lab.record import ENV_VAR, jsonable, load


def test_record_writes_and_merges(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    monkeypatch.setenv(ENV_VAR, str(target))
    mclab.record(latency_ms=np.float32(1.5), n=np.int64(3), names=["a", "b"])
    mclab.record(latency_ms=2.0, arr=np.arange(3))
    assert json.loads(target.read_text()) == {"latency_ms": 2.0, "n": 3, "names": ["a", "b"], "arr": [0, 1, 2]}
    assert load(target)["n"] == 3


def test_record_without_runner_only_displays(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert mclab.record(accuracy=0.97) == {"accuracy": 0.97}
    assert "accuracy" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad, match", [
    ({"Latency": 1}, "lower_snake_case"),
    ({"x": float("nan")}, "finite"),
    ({"x": object()}, "type object"),
    ({}, "at least one"),
])
def test_record_rejects_bad_metrics(bad, match, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises((ValueError, TypeError), match=match):
        mclab.record(**bad)


def test_jsonable_nested():
    assert jsonable({"a": (1, np.float64(2.5)), "b": None, "c": True}) == {"a": [1, 2.5], "b": None, "c": True}

"""The kit's cache of trained artefacts: one folder, one content hash, one atomic write.

A trained model is saved under a name that carries a hash of everything that produced it (architecture, recipe,
parent weights), so a changed recipe trains afresh and an unchanged one is loaded: ``cached(path, build, save=...,
load=...)`` loads ``path`` when it exists, else builds the value, writes it to a temporary file and renames it into
place (``os.replace`` is atomic, so concurrent runs never read half a file). Used by :func:`mclab.models.reference`,
:func:`mclab.quant.qat`, :func:`mclab.nas.cached_supernet` and the deployment steps of :mod:`mclab.deploy`
(:func:`mclab.llm.pretrained` keeps its checkpoints in :func:`cache_dir` too). Introduced in notebook 05.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["cache_dir", "key", "digest", "CacheEntry", "cached"]


def cache_dir() -> Path:
    """Where trained checkpoints live: ``$MCLAB_CACHE`` or ``~/.cache/mclab`` (created if missing)."""
    d = Path(os.environ.get("MCLAB_CACHE") or Path.home() / ".cache" / "mclab").expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def key(**parts: Any) -> str:
    """A content hash of ``parts``: the first 12 hex digits of the SHA-256 of their JSON (keys sorted; a value
    JSON cannot hold is written as its ``str``). Equal parts give equal keys across runs and machines."""
    return digest([json.dumps(parts, sort_keys=True, default=str).encode()])


def digest(chunks: Iterable[bytes]) -> str:
    """The first 12 hex digits of the SHA-256 of ``chunks`` in order: a content hash of raw bytes (model weights)."""
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()[:12]


@dataclass
class CacheEntry:
    """What :func:`cached` returns: the value, the file it lives in, and whether it was loaded from that file
    (True) or built now and saved (False)."""

    value: Any
    path: Path
    from_cache: bool

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "from_cache": self.from_cache}


def cached(path: str | os.PathLike, build: Callable[[], Any], *, save: Callable[[Any, Path], Any],
           load: Callable[[Path], Any]) -> CacheEntry:
    """``load(path)`` when the file exists; otherwise ``value = build()``, ``save(value, tmp)`` to a temporary file
    beside ``path`` and an atomic rename onto ``path``. Returns a :class:`CacheEntry`."""
    path = Path(path)
    if path.is_file():
        return CacheEntry(load(path), path, True)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save(value, tmp)
    os.replace(tmp, path)  # atomic: concurrent runs never see half a file
    return CacheEntry(value, path, False)

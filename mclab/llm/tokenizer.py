"""Byte-level tokenizer and the training text that ships with Python.

Every UTF-8 byte is a token (vocabulary of 256), as in ByT5 and llama.cpp's byte-fallback
tokens: no vocabulary to learn, no unknown token, and any text round-trips exactly. The text
is the English reference documentation of CPython 3.11.7 (its ``pydoc_data.topics``, ~0.47 MB), which the
kit ships in ``data/`` (:func:`mclab.data.python_docs`): offline, and the same bytes on every Python version,
whereas each interpreter bundles its own edition. Introduced in notebook 13.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..data import python_docs

__all__ = ["ByteTokenizer", "Corpus", "corpus"]


class ByteTokenizer:
    """``encode(text) -> list[int]`` of UTF-8 bytes; ``decode`` is its inverse (invalid bytes become U+FFFD)."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return list(text.encode("utf-8"))

    def decode(self, tokens) -> str:
        data = bytes(int(t) for t in tokens)
        return data.decode("utf-8", errors="replace")

    def token_str(self, token: int) -> str:
        """Printable form of one token: the character for printable ASCII, ``<0xNN>`` otherwise (llama.cpp's
        spelling)."""
        return chr(token) if 32 <= token < 127 else f"<0x{token:02X}>"


@dataclass(frozen=True)
class Corpus:
    """The training text as uint8 token arrays: ``train`` (~90 %) and ``val`` (~10 %, held out), whole topics each."""

    train: np.ndarray
    val: np.ndarray
    sha256: str  # of the whole text, so a cached model is tied to the text it was trained on

    @property
    def n_tokens(self) -> int:
        return len(self.train) + len(self.val)


def corpus(val_fraction: float = 0.1) -> Corpus:
    """Load the shipped Python documentation (:func:`mclab.data.python_docs`, topics in sorted order), byte-encode
    it and split it; returns a :class:`Corpus`.

    Whole topics are held out, spread through the alphabet (a topic goes to ``val`` when that brings the held-out
    share of the bytes so far closer to ``val_fraction``): held-out text is unseen but of the same kind as the
    training text. A split at one point (the last 10 % of the alphabet) holds out different subjects, on which a
    trained model is over-confident; any weight noise, such as INT4 rounding, then *lowers* held-out perplexity by
    flattening its predictions, which hides which quantiser is more accurate (notebook 13).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be between 0 and 1 (exclusive)")
    topics = python_docs()
    docs = [topics[k].encode("utf-8") for k in sorted(topics)]
    parts: dict[str, list[bytes]] = {"train": [], "val": []}
    seen = held = 0
    for doc in docs:
        seen += len(doc)
        to_val = abs(held + len(doc) - val_fraction * seen) < abs(held - val_fraction * seen)
        held += len(doc) if to_val else 0
        parts["val" if to_val else "train"].append(doc)
    whole = b"\n\n".join(docs)
    train, val = (np.frombuffer(b"\n\n".join(parts[n]), dtype=np.uint8).copy() for n in ("train", "val"))
    return Corpus(train=train, val=val, sha256=hashlib.sha256(whole + f"|val {val_fraction}".encode()).hexdigest())

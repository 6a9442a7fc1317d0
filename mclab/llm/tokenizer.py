"""Byte-level tokenizer and the training text that ships with Python.

Every UTF-8 byte is a token (vocabulary of 256), as in ByT5 and llama.cpp's byte-fallback
tokens: no vocabulary to learn, no unknown token, and any text round-trips exactly. The text
is the English reference documentation bundled in CPython's standard library
(``pydoc_data.topics``, ~0.47 MB), so it is offline and identical wherever the Python version
is the same. Introduced in notebook 13.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

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
        """Printable form of one token: the character for printable ASCII, ``<0xNN>`` otherwise (llama.cpp's spelling)."""
        return chr(token) if 32 <= token < 127 else f"<0x{token:02X}>"


@dataclass(frozen=True)
class Corpus:
    """The training text as uint8 token arrays: ``train`` (first 90 %) and ``val`` (last 10 %, held out)."""

    train: np.ndarray
    val: np.ndarray
    sha256: str  # of the whole text, so a cached model is tied to the text it was trained on

    @property
    def n_tokens(self) -> int:
        return len(self.train) + len(self.val)


def corpus(val_fraction: float = 0.1) -> Corpus:
    """Load ``pydoc_data.topics`` (topics in sorted order), byte-encode it and split it; returns a :class:`Corpus`."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be between 0 and 1 (exclusive)")
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    split = int(len(data) * (1 - val_fraction))
    return Corpus(train=data[:split].copy(), val=data[split:].copy(),
                  sha256=hashlib.sha256(data.tobytes()).hexdigest())

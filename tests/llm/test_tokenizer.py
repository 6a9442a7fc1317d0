"""mclab.llm.tokenizer: byte-level tokens and the shipped Python documentation as training text."""
from __future__ import annotations

import pytest

from mclab import data, llm


def test_byte_tokenizer_round_trips_any_text():
    tok = llm.ByteTokenizer()
    text = "def f(x):\n    return x ** 2  # ünïcødé, 量化, 🙂"
    ids = tok.encode(text)
    assert all(0 <= i < 256 for i in ids) and len(ids) == len(text.encode())
    assert tok.decode(ids) == text
    assert tok.token_str(65) == "A" and tok.token_str(10) == "<0x0A>"
    with pytest.raises(TypeError, match="text must be str"):
        tok.encode(b"bytes")


# the LLM's corpus on every Python: data/pydoc_topics.json (CPython 3.11.7's docs) split 90/10 by whole topics
CORPUS_SHA256 = "d5965dd263bd3ea475641bd869d4726fd888193d80035555885e0521e06a4382"
CORPUS_TOKENS = (419_204, 47_067)  # train, val bytes


def test_corpus_is_the_shipped_python_docs_split_90_10_by_whole_topics():
    topics = data.python_docs()
    c = llm.corpus()
    assert (len(c.train), len(c.val)) == CORPUS_TOKENS and c.sha256 == CORPUS_SHA256  # the same on every Python
    assert abs(len(c.val) / c.n_tokens - 0.1) < 2e-3
    train, val = (bytes(a).decode("utf-8") for a in (c.train, c.val))
    held = [k for k in sorted(topics) if topics[k] in val]
    assert held and not any(topics[k] in train for k in held)  # whole topics, each on one side
    first, last = sorted(topics).index(held[0]), sorted(topics).index(held[-1])
    assert first < len(topics) / 5 and last > 4 * len(topics) / 5  # spread through the alphabet, not its tail
    assert llm.corpus().sha256 == c.sha256  # deterministic
    with pytest.raises(ValueError, match="val_fraction"):
        llm.corpus(val_fraction=1.5)


def test_the_shipped_docs_are_checked_at_load(tmp_path):
    changed = tmp_path / "pydoc_topics.json"
    changed.write_bytes(data.PYTHON_DOCS.read_bytes().replace(b"\n", b"\r\n"))  # what a CRLF checkout would do
    with pytest.raises(ValueError, match="SHA-256"):
        data.python_docs(changed)
    with pytest.raises(FileNotFoundError, match="missing"):
        data.python_docs(tmp_path / "absent.json")
    assert len(data.python_docs()) == 79

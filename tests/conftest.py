from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def python() -> str:
    """The interpreter running the tests (the kit's .venv under `make test`)."""
    return sys.executable

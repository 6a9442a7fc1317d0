"""Fixtures for the browser tests: headless Chromium (Debian's package, driven by Playwright), one JupyterLab
serving FAST copies of the widget notebooks, and the artefact folder build/e2e/.

FAST in the browser: each notebook is opened as a papermill-prepared copy (``papermill --prepare-only
-p FAST True``: the same injected-parameters cell the notebook runner adds, nothing executed), so no cell
text is edited and the learner's defaults stay in notebooks/.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import REPO

from .lab import LabServer

ART = REPO / "build" / "e2e"
NB_DIR = REPO / "notebooks"


def chromium_path() -> str:
    """``MCLAB_CHROMIUM``, else Debian's /usr/bin/chromium, else ``chromium`` on PATH."""
    want = os.environ.get("MCLAB_CHROMIUM")
    found = want if want else (shutil.which("/usr/bin/chromium") or shutil.which("chromium"))
    if not found or not os.access(found, os.X_OK):
        pytest.fail(f"no Chromium at {want or '/usr/bin/chromium or on PATH'}: install Debian's package "
                    "(`apt-get install --no-install-recommends chromium`, as .ci/run does) or set MCLAB_CHROMIUM",
                    pytrace=False)
    return found


def widget_notebooks(nb_dir: Path = NB_DIR) -> list[Path]:
    """Notebooks whose code uses ipywidgets or mclab.lab.widgets, in teaching order."""
    from .driver import WIDGET_CODE

    return [p for p in sorted(nb_dir.glob("[0-9][0-9]*_*.ipynb"))  # NN_ and a split chapter NNb_
            if any(WIDGET_CODE.search(c.source) for c in nbformat.read(p, 4).cells if c.cell_type == "code")]


def prepare_fast(src: Path, dst_dir: Path) -> Path:
    """A copy of ``src`` with ``FAST = True`` injected after its parameters cell, as the test runner does."""
    import papermill

    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    papermill.execute_notebook(str(src), str(dst), parameters={"FAST": True}, prepare_only=True,
                               kernel_name="python3", progress_bar=False, log_output=False)
    return dst


@pytest.fixture(scope="session")
def artefacts() -> Path:
    ART.mkdir(parents=True, exist_ok=True)
    return ART


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=exe, headless=True,
                               args=["--no-sandbox"] if os.geteuid() == 0 else [])
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def lab(artefacts):
    root = artefacts / "notebooks"
    shutil.rmtree(root, ignore_errors=True)
    for p in widget_notebooks():
        prepare_fast(p, root)
    server = LabServer(root=root, state=artefacts / "lab").start()
    try:
        yield server
    finally:
        server.stop()
        assert not server.survivors(), f"JupyterLab left processes running: {server.survivors()}"

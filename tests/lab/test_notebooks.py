"""mclab.lab.notebooks: the runner names the notebook, the cell and the error, enforces its time limit, and insists
on recorded metrics (on toy notebooks; tests/test_notebooks.py runs the real ones)."""
from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from conftest import REPO

from mclab.lab import notebooks


def _mclab(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "mclab.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_only_unknown_names_the_notebooks_that_exist():
    r = _mclab("notebooks", "--only", "99")
    assert r.returncode == 2
    assert "99" in r.stderr and "00_start_here" in r.stderr and "Traceback" not in r.stderr


def _write(path, *sources, params="FAST: bool = False  # CI mode"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell, *map(nbformat.v4.new_code_cell, sources)]
    nbformat.write(nb, path)


@pytest.mark.notebooks
def test_failing_notebook_names_notebook_cell_and_error(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    _write(d / "00_ok.ipynb", "import mclab\nmclab.record(fast=FAST)")
    _write(d / "01_broken.ipynb", "x = 1", "y = 2\nraise ValueError('bit_width=0 is not allowed')")
    r = _mclab("notebooks", "--fast", "--dir", str(d), "--out", str(tmp_path / "out"))
    assert r.returncode == 1
    assert "01_broken.ipynb" in r.stderr and "cell 4" in r.stderr and "ValueError: bit_width=0" in r.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    ok, broken = summary["runs"]
    assert ok["status"] == "ok" and ok["metrics"] == {"fast": True}  # FAST was injected
    assert broken["status"] == "failed" and broken["failed_cell"] == 4 and broken["failed_source"] == "y = 2"


@pytest.mark.notebooks
def test_timeout_and_missing_record_fail(tmp_path):
    _write(tmp_path / "00_slow.ipynb", "import time\ntime.sleep(60)")
    run = notebooks.run_notebook(tmp_path / "00_slow.ipynb", tmp_path / "out", timeout_s=8)
    assert run.status == "timeout" and "timed out" in run.error and run.failed_cell == 3
    _write(tmp_path / "01_silent.ipynb", "x = 1")
    run = notebooks.run_notebook(tmp_path / "01_silent.ipynb", tmp_path / "out")
    assert run.status == "failed" and "recorded no metrics" in run.error


@pytest.mark.notebooks
def test_the_kernel_has_its_own_temporary_folder_and_what_it_leaves_is_listed(tmp_path, monkeypatch):
    import tempfile

    usual = tmp_path / "usual"
    usual.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(usual))  # where the runner makes the kernel's folder
    _write(tmp_path / "00_tmp.ipynb",
           "import os, tempfile\nleft = tempfile.mkdtemp(prefix='left-')\n"
           "kept = tempfile.TemporaryDirectory(prefix='gone-')  # removed when the kernel stops\n"
           "open(os.path.join(kept.name, 'f'), 'w').close()\n"
           "import mclab\nmclab.record(kernel_tmp=tempfile.gettempdir())")
    run = notebooks.run_notebook(tmp_path / "00_tmp.ipynb", tmp_path / "out")
    assert run.ok, str(run)
    assert run.metrics["kernel_tmp"].startswith(str(usual / "mclab-kernel-00-"))
    assert len(run.left_in_tmp) == 1 and run.left_in_tmp[0].startswith("left-"), run.left_in_tmp
    assert "left in its temporary folder: left-" in str(run)
    # the kernel's folder is gone with what was left in it; torch.compile's shared cache folder may stay
    assert [p.name for p in usual.iterdir() if not p.name.startswith("torchinductor_")] == []

"""`make lab` serves JupyterLab: start it on loopback with a random port and token, check it
answers and lists the notebooks, register the kernel, and stop it with nothing left behind."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO
from e2e.lab import free_port, port_open

VENV = Path(sys.prefix)  # the environment the tests run in: .venv, or .venv-3.13 beside it as .ci/run makes


@pytest.mark.skipif(not (VENV.parent == REPO.resolve() and (VENV / "bin" / "jupyter").exists()),
                    reason="needs the kit's own environment in the repository (run `make test`)")
def test_make_lab_serves_the_notebooks(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = tmp_path / "lab.log"
    url = f"http://127.0.0.1:{port}/lab?token="  # a token given by the user is printed masked
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "lab", f"VENV={VENV.name}", f"LAB_PORT={port}", f"LAB_TOKEN={token}"],
                                cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and url not in log.read_text():
            time.sleep(0.5)
        assert url in log.read_text(), "JupyterLab printed no URL:\n" + log.read_text()
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/api/contents?token={token}", timeout=30) as r:
            listing = json.load(r)
        names = {item["name"] for item in listing["content"]}
        assert {p.name for p in (REPO / "notebooks").glob("*.ipynb")} <= names
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=30) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
        with pytest.raises(urllib.error.HTTPError):  # the token is required
            urllib.request.urlopen(f"{base}/api/contents", timeout=30)
        spec = json.loads((tmp_path / "data" / "kernels" / "mclab" / "kernel.json").read_text())
        assert Path(spec["argv"][0]).parent == (REPO / VENV.name / "bin").absolute()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for _ in range(50):
        if not port_open(port):
            break
        time.sleep(0.2)
    assert not port_open(port), "JupyterLab still listening after stop"

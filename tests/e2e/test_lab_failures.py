"""JupyterLab that cannot start says why and leaves nothing running; a server that did start is stopped
with its kernels."""
from __future__ import annotations

import json
import socket

import pytest

from .lab import LabServer, LabStartError, port_open

pytestmark = pytest.mark.e2e


def _assert_gone(server: LabServer) -> None:
    assert not server.survivors(), f"processes left running: {server.survivors()}"
    assert not port_open(server.port), f"port {server.port} still listening"


def test_port_taken(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        server = LabServer(root=tmp_path, state=tmp_path / "state", port=s.getsockname()[1])
        with pytest.raises(LabStartError, match=r"port \d+ on 127.0.0.1 is already taken"):
            server.start()
        assert server.proc is None  # nothing was launched
    _assert_gone(server)


def test_server_that_exits_reports_its_log(tmp_path):
    server = LabServer(root=tmp_path / "no-such-folder", state=tmp_path / "state")
    with pytest.raises(LabStartError, match=r"(?s)exited with status \d+ before answering.*last lines of"):
        server.start()
    _assert_gone(server)


def test_missing_kernel(tmp_path):
    server = LabServer(root=tmp_path, state=tmp_path / "state", kernel="mclab-no-such-kernel")
    with pytest.raises(LabStartError, match=r"has no kernel named 'mclab-no-such-kernel' \(found: .*python3"):
        server.start()
    _assert_gone(server)


def test_kernel_that_cannot_start(tmp_path):
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(tmp_path / "no-such-python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (broken)", "language": "python"}))
    server = LabServer(root=tmp_path, state=tmp_path / "state", env={"JUPYTER_PATH": str(tmp_path / "jupyter")})
    with pytest.raises(LabStartError, match=r"cannot start kernel 'python3'|kernel 'python3' but it never answered"):
        server.start()
    _assert_gone(server)


def test_stop_ends_server_and_kernels(tmp_path):
    server = LabServer(root=tmp_path, state=tmp_path / "state").start()
    try:
        kernel = server._api("kernels?name=python3", "POST", timeout=60)["id"]
        server._remember_children()
        assert kernel and any("ipykernel" in " ".join(p.cmdline()) for p in server.spawned.values() if p.is_running())
    finally:
        server.stop()
    _assert_gone(server)
    server.stop()  # twice is harmless


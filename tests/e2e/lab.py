"""A JupyterLab server for the browser tests: the kit's venv, loopback, a random free port and token, a
kernel checked alive before any test uses it, and a stop that leaves no process behind.

``LabServer.start()`` raises :class:`LabStartError` with the reason and the end of the server's log when
the port is taken, the server exits, it never answers, or its kernel is missing or cannot start; in every
one of those cases the server and anything it spawned are stopped first.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# JupyterLab's bundled extensions that pop toasts over the notebook (news, update checks)
_QUIET_PAGE_CONFIG = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}


class LabStartError(RuntimeError):
    """JupyterLab did not come up ready to run notebooks; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class LabServer:
    """``jupyter lab`` serving ``root`` with the interpreter's environment (the kit's .venv under make)."""

    root: Path                      # the folder the file browser shows; notebooks open relative to it
    state: Path                     # private JUPYTER_CONFIG/DATA/RUNTIME dirs and the server log
    kernel: str = "python3"         # the kernel the notebooks name; checked alive at start
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the server and its kernels
    startup_s: float = 120.0
    proc: subprocess.Popen | None = None
    spawned: dict[int, psutil.Process] = field(default_factory=dict)  # everything the server started, for stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.state / "lab.log"

    def page(self, path: str) -> str:
        """The URL that opens ``path`` (relative to ``root``) in a fresh workspace."""
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    # ------------------------------------------------------------------ start

    def start(self) -> "LabServer":
        if port_open(self.port):
            raise LabStartError(f"port {self.port} on 127.0.0.1 is already taken by another process; "
                                "JupyterLab cannot listen there (the suite picks a free port unless one is given)")
        for d in ("config/labconfig", "data", "runtime"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        (self.state / "config/labconfig/page_config.json").write_text(json.dumps(_QUIET_PAGE_CONFIG))
        env = {**os.environ, "JUPYTER_CONFIG_DIR": str(self.state / "config"),
               "JUPYTER_DATA_DIR": str(self.state / "data"),
               "JUPYTER_RUNTIME_DIR": str(self.state / "runtime"), "JUPYTER_PREFER_ENV_PATH": "1",
               "PYTHONWARNINGS": "ignore", "TF_CPP_MIN_LOG_LEVEL": "3", **self.env}
        cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
               f"--ServerApp.root_dir={self.root}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               "--ServerApp.terminals_enabled=False", "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")  # CI runs as root
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.state, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
            self._check_kernel()
        except BaseException:
            self.stop()
            raise
        return self

    def _fail(self, why: str) -> LabStartError:
        tail = self.log.read_text(errors="replace").strip().splitlines()[-15:] if self.log.exists() else []
        return LabStartError(f"JupyterLab on 127.0.0.1:{self.port} (root {self.root}) {why}\n"
                             f"--- last lines of {self.log} ---\n" + "\n".join(tail))

    def _api(self, path: str, method: str = "GET", timeout: float = 10.0) -> dict | list | None:
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"},
                                     data=b"{}" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            self._remember_children()
            if self.proc.poll() is not None:
                raise self._fail(f"exited with status {self.proc.returncode} before answering")
            try:
                self._api("status", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise self._fail(f"did not answer within {self.startup_s:.0f} s")

    def _check_kernel(self) -> None:
        """The kernel the notebooks name exists and starts (a kernel is launched, seen idle, shut down)."""
        specs = self._api("kernelspecs")["kernelspecs"]
        if self.kernel not in specs:
            raise self._fail(f"has no kernel named {self.kernel!r} (found: {', '.join(sorted(specs)) or 'none'}); "
                             "the notebooks need it: `make install` puts ipykernel into .venv")
        try:
            kid = self._api(f"kernels?name={self.kernel}", "POST", timeout=60)["id"]
        except urllib.error.HTTPError as e:
            raise self._fail(f"cannot start kernel {self.kernel!r}: HTTP {e.code} "
                             f"{e.read().decode(errors='replace')[:300]}") from None
        from jupyter_client import BlockingKernelClient

        client = BlockingKernelClient(connection_file=str(self.state / "runtime" / f"kernel-{kid}.json"))
        try:
            self._remember_children()
            client.load_connection_file()
            client.start_channels()
            client.wait_for_ready(timeout=60)  # a kernel_info request answered: the kernel runs code
        except (OSError, RuntimeError) as e:
            raise self._fail(f"started kernel {self.kernel!r} but it never answered: {e}") from None
        finally:
            client.stop_channels()
            try:
                self._api(f"kernels/{kid}", "DELETE", timeout=30)
            except urllib.error.URLError:
                pass  # already gone: the failure above says why

    # ------------------------------------------------------------------ stop

    def _remember_children(self) -> None:
        try:
            self.spawned.update({p.pid: p for p in psutil.Process(self.proc.pid).children(recursive=True)})
        except psutil.NoSuchProcess:
            pass

    def survivors(self) -> list[int]:
        """Pids of the server and everything it started that are still running."""
        procs = list(self.spawned.values()) + ([] if self.proc is None or self.proc.poll() is not None
                                               else [psutil.Process(self.proc.pid)])
        alive = []
        for p in procs:  # psutil.Process checks the start time too, so a reused pid is not mistaken for ours
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p.pid)
            except psutil.NoSuchProcess:
                pass
        return sorted(alive)

    def stop(self) -> None:
        """SIGTERM the server's process group (it shuts its kernels down), then SIGKILL whatever is left,
        kernels in their own sessions included. Safe to call twice."""
        if self.proc is None:
            return
        self._remember_children()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group outlives its leader; not yet reaped, so still ours
        except (ProcessLookupError, PermissionError):
            pass
        for p in self.spawned.values():  # kernels run in sessions of their own
            try:
                p.kill()  # psutil refuses a pid that was reused by another process
            except psutil.NoSuchProcess:
                pass
        self.proc.wait()
        psutil.wait_procs(list(self.spawned.values()), timeout=10)

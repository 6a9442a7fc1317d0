"""The kit's map of notebooks, and the runner that executes them headlessly.

:func:`run_all` executes notebooks with papermill, each in a fresh kernel and a child
process with its own time limit, one at a time; it reports which cell failed and collects
what each notebook recorded with :func:`mclab.record`. :func:`mclab.lab.report.render_report` turns a
run into HTML pages with an index (the report imports this module, never the other way round).
``mclab notebooks`` and ``mclab report`` are the CLI.
Introduced in notebook 00.
"""
from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .record import ENV_VAR, load

__all__ = [
    # the map
    "Chapter", "CURRICULUM", "chapter",
    # the environment of the kernels the runner starts
    "HEADLESS_ENV", "KERNEL_ENV", "KEPT_IN_TMP",
    # results
    "NotebookRun", "RunSummary",
    # verbs
    "default_dir", "discover", "select", "run_notebook", "run_all",
]

# Set to "1" by run_notebook for the kernels it starts: no front end is attached, so mclab.lab.widgets draws nothing
# into Output widgets until a control moves (see widgets._first_draw).
HEADLESS_ENV = "MCLAB_HEADLESS"
# what a headless kernel runs with (here and under the grader): no widgets waiting for a browser, this environment's
# Jupyter, quiet warnings and TensorFlow logs, inline figures
KERNEL_ENV = {HEADLESS_ENV: "1", "JUPYTER_PREFER_ENV_PATH": "1", "PYTHONWARNINGS": "ignore",
              "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}

# what a kernel may leave in its temporary folder: files that libraries keep there by design, one per machine
KEPT_IN_TMP = {".ses": "onnxruntime's session id, 51 bytes that every process rewrites"}

# NN_topic.ipynb; a chapter split in two is NNb_topic.ipynb (13, then 13b), which sorts between NN and NN+1.
NAME_RE = re.compile(r"^(\d{2}[a-z]?)_([a-z0-9_]+)\.ipynb$")


@dataclass(frozen=True)
class Chapter:
    number: str
    title: str
    question: str
    modules: tuple[str, ...]   # the mclab modules it uses


# Teaching order, one chapter per notebook file NN_*.ipynb (tests check that every notebook on disk is listed here).
CURRICULUM: tuple[Chapter, ...] = (
    Chapter("00", "Start here", "What does this machine offer, and what will the kit measure?",
            ("hw", "scenarios", "plots")),
    Chapter("01", "Latency", "How long does one inference take, measured honestly (P50/P90/P99)?", ("bench",)),
    Chapter("02", "Throughput and batching", "How many inferences per second, and what does batching cost in latency?",
            ("bench",)),
    Chapter("03", "Compute and resources", "FLOPs, MACs, parameters, size, memory: when do they predict speed?",
            ("flops",)),
    Chapter("04", "Quantisation math",
            "How do a scale and a zero point turn floats into integers, and what error do they add?",
            ("quant",)),
    Chapter("05", "PTQ and QAT", "What does real INT8 do to accuracy, size and speed on this CPU?",
            ("quant", "models")),
    Chapter("06", "Pruning", "What do removed weights and channels really buy?", ("prune",)),
    Chapter("07", "Knowledge distillation", "Can a small student learn what a large teacher knows?", ("distill",)),
    Chapter("08", "Low-rank factorisation", "When does an SVD make a layer smaller and faster?", ("lowrank",)),
    Chapter("09", "ONNX and ONNX Runtime", "What do export and graph optimisation change, and how much faster is it?",
            ("runtimes",)),
    Chapter("10", "OpenVINO", "Which precision does the CPU plugin silently choose, and what does it buy?",
            ("runtimes",)),
    Chapter("11", "Mobile runtimes: TFLite and NCNN", "What do the mobile converters do to size, accuracy and speed?",
            ("runtimes",)),
    Chapter("12", "TensorRT and torch.compile", "What does compilation buy on a GPU, and on this CPU?", ("runtimes",)),
    Chapter("13", "Edge LLMs", "What do a KV cache and 8/4-bit weights do to a small language model?", ("llm",)),
    Chapter("13b", "Edge LLMs: outliers, KV cache and speculative decoding",
            "Why do AWQ and SmoothQuant exist, what does an INT8 KV cache save, and what does a draft model buy?",
            ("llm",)),
    Chapter("14", "Energy and cost", "How many joules and dollars does an inference cost?", ("energy",)),
    Chapter("15", "Reliability", "Is the answer the same every time, and always a number?", ("reliability",)),
    Chapter("16", "Trade-offs and deployment",
            "Which optimisations meet a scenario's constraints, and which are Pareto-optimal?",
            ("deploy", "scenarios")),
    Chapter("17", "Distributed inference", "How do batching and replicas share load across workers?", ("distributed",)),
    Chapter("18", "Case study: a real OCR app",
            "Where does a deployed OCR pipeline spend its time, and what makes it fast?",
            ("ocr", "runtimes", "deploy")),
    Chapter("19", "Search: architectures and bit widths",
            "Which network and which per-layer bit widths fit a latency or size budget best?", ("search",)),
)


def chapter(number: str) -> Chapter:
    for c in CURRICULUM:
        if c.number == number:
            return c
    raise ValueError(f"notebook number {number!r} is not in the curriculum (00–{CURRICULUM[-1].number})")


@dataclass
class NotebookRun:
    """One executed notebook: status, wall time, what it recorded, where it failed."""

    number: str
    name: str
    output: str                # path of the executed notebook
    fast: bool
    status: str                # "ok", "failed" or "timeout"
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    failed_cell: int | None = None     # 1-based position of the cell in the source notebook
    failed_source: str | None = None   # that cell's first line
    error: str | None = None
    left_in_tmp: list[str] = field(default_factory=list)  # what the kernel left in its own temporary folder

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        if self.ok:
            left = f"; left in its temporary folder: {', '.join(self.left_in_tmp)}" if self.left_in_tmp else ""
            return f"ok      {self.name:34s} {self.seconds:7.1f} s  {len(self.metrics)} metrics{left}"
        where = f"cell {self.failed_cell} ({self.failed_source!r})" if self.failed_cell else "no cell identified"
        return f"{self.status.upper():7s} {self.name:34s} {self.seconds:7.1f} s  {where}: {self.error}"


@dataclass
class RunSummary:
    fast: bool
    out_dir: str
    runs: list[NotebookRun]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {"fast": self.fast, "out_dir": self.out_dir, "ok": self.ok,
                "runs": [r.as_dict() for r in self.runs]}

    def __str__(self) -> str:
        total = sum(r.seconds for r in self.runs)
        failed = sum(not r.ok for r in self.runs)
        mode = "FAST" if self.fast else "full"
        return "\n".join([*(str(r) for r in self.runs),
                          f"{len(self.runs) - failed} passed, {failed} failed ({mode} mode, {total:.1f} s)"])


# ----------------------------------------------------------------------------- finding


def default_dir() -> Path:
    """The repository's ``notebooks/`` folder (the kit is installed in editable mode)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def discover(nb_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Map notebook number -> path for every ``NN_topic.ipynb`` in ``nb_dir``."""
    d = Path(nb_dir) if nb_dir is not None else default_dir()
    if not d.is_dir():
        raise ValueError(f"notebook folder {str(d)!r} does not exist; pass --dir with the folder of .ipynb files")
    found: dict[str, Path] = {}
    for p in sorted(d.glob("*.ipynb")):
        m = NAME_RE.match(p.name)
        if not m:
            raise ValueError(f"notebook {p.name!r} is not named NN_topic.ipynb or NNb_topic.ipynb "
                             "(two digits, an optional letter, lower_snake_case)")
        if m.group(1) in found:
            raise ValueError(f"two notebooks share number {m.group(1)}: {found[m.group(1)].name}, {p.name}")
        found[m.group(1)] = p
    return found


def select(available: dict[str, Path], only: Iterable[str] | None) -> list[Path]:
    """The notebooks to run, in order; ``only`` takes numbers ('3', '03') or names."""
    if not only:
        return [available[k] for k in sorted(available)]
    picked = []
    for want in only:
        key = want.zfill(2) if want.isdigit() else want.removesuffix(".ipynb")
        hit = available.get(key) or next((p for p in available.values() if p.stem == key), None)
        if hit is None:
            names = ", ".join(p.stem for _, p in sorted(available.items())) or "none"
            raise ValueError(f"--only {want!r} matches no notebook; notebooks that exist: {names}")
        picked.append(hit)
    return picked


# ----------------------------------------------------------------------------- running


def _source_cells(nb: dict[str, Any]) -> list[dict[str, Any]]:
    """The executed notebook's cells minus those papermill inserted."""
    skip = {"injected-parameters", "papermill-error-cell-tag"}
    return [c for c in nb.get("cells", []) if not skip & set(c.get("metadata", {}).get("tags", []))]


def _locate_failure(output: Path) -> tuple[int | None, str | None, str | None]:
    """(1-based cell position, first source line, error text) from an executed notebook."""
    try:
        nb = json.loads(output.read_text())
    except (OSError, ValueError):
        return None, None, None
    cells = _source_cells(nb)
    for i, c in enumerate(cells, 1):
        for out in c.get("outputs", []):
            if out.get("output_type") == "error":
                return i, _first_line(c), f"{out.get('ename')}: {out.get('evalue')}"
    for i, c in enumerate(cells, 1):  # a timeout leaves the running cell marked
        if c.get("metadata", {}).get("papermill", {}).get("status") == "running":
            return i, _first_line(c), None
    return None, None, None


def _first_line(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    src = "".join(src) if isinstance(src, list) else src
    return next((ln for ln in src.splitlines() if ln.strip()), "")[:80]


def run_notebook(path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, fast: bool = True,
                 timeout_s: float = 600.0, parameters: dict[str, Any] | None = None) -> NotebookRun:
    """Execute one notebook in a fresh kernel; returns a :class:`NotebookRun` (never raises for
    a failing notebook). FAST mode injects ``FAST = True`` into its ``parameters`` cell."""
    src = Path(path)
    if not src.is_file():
        raise ValueError(f"notebook {str(src)!r} does not exist")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s={timeout_s} must be > 0 seconds")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    executed = out / src.name
    metrics_file = out / f"{src.stem}.metrics.json"
    metrics_file.unlink(missing_ok=True)
    params = {**({"FAST": True} if fast else {}), **(parameters or {})}
    cmd = [sys.executable, "-m", "papermill", str(src), str(executed), "--cwd", str(src.parent),
           "--kernel", "python3", "--no-progress-bar", "--log-level", "ERROR"]
    for k, v in params.items():
        cmd += ["-y", json.dumps({k: v})]
    # the kernel gets a temporary folder of its own (TMPDIR): what it leaves there is listed, then removed
    kernel_tmp = tempfile.mkdtemp(prefix=f"mclab-kernel-{src.stem[:2]}-")
    inductor = _inductor_cache()  # torch.compile's caches stay shared between runs: a link to the usual folder
    with contextlib.suppress(OSError):  # no symbolic links (Windows without the right): the caches start cold
        os.makedirs(inductor, exist_ok=True)
        os.symlink(inductor, os.path.join(kernel_tmp, os.path.basename(inductor)))
    env = {**os.environ, **KERNEL_ENV, ENV_VAR: str(metrics_file.resolve()), "TMPDIR": kernel_tmp}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout_s)
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # papermill and its kernel share the session
        log, _ = proc.communicate()
        status = "timeout"
    seconds = time.perf_counter() - start
    left = sorted(set(os.listdir(kernel_tmp)) - {os.path.basename(inductor), *KEPT_IN_TMP})
    shutil.rmtree(kernel_tmp, ignore_errors=True)

    run = NotebookRun(number=src.name.split("_", 1)[0], name=src.name, output=str(executed), fast=fast,
                      status=status, seconds=round(seconds, 2), left_in_tmp=left)
    if metrics_file.exists():
        run.metrics = load(metrics_file)
    if status != "ok":
        run.failed_cell, run.failed_source, run.error = _locate_failure(executed)
        if status == "timeout":
            run.error = f"timed out after {timeout_s:.0f} s"
        elif run.error is None:
            run.error = (log.strip().splitlines() or ["papermill failed with no output"])[-1]
    elif not run.metrics:
        run.status, run.error = "failed", "finished but recorded no metrics (the last cell must call mclab.record)"
    return run


def _inductor_cache() -> str:
    """torch's ``default_cache_dir()``: where torch.compile keeps compiled kernels and precompiled headers (some of
    torch's caches go there even when ``TORCHINDUCTOR_CACHE_DIR`` names another folder)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid_{os.getuid()}" if hasattr(os, "getuid") else "unknown_user"
    return os.path.join(tempfile.gettempdir(), "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))


def run_all(nb_dir: str | os.PathLike[str] | None = None, *, only: Iterable[str] | None = None,
            fast: bool = True, out_dir: str | os.PathLike[str] = "build/notebooks",
            timeout_s: float = 600.0, echo: bool = False) -> RunSummary:
    """Run the selected notebooks one at a time; writes ``summary.json`` in ``out_dir``."""
    paths = select(discover(nb_dir), only)
    runs = []
    for p in paths:
        if echo:
            print(f"running {p.name} ({'FAST' if fast else 'full'} mode) ...", flush=True)
        runs.append(run_notebook(p, out_dir, fast=fast, timeout_s=timeout_s))
        if echo:
            print(f"  {runs[-1]}", flush=True)
    summary = RunSummary(fast=fast, out_dir=str(out_dir), runs=runs)
    Path(out_dir, "summary.json").write_text(json.dumps(summary.as_dict(), indent=2))
    return summary

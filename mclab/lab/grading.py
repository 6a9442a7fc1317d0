"""The instructor's side of the exercises: nbgrader source notebooks, student releases, autograding, a grade table.

The notebooks in ``notebooks/`` are the learner's copy: each exercise is an nbgrader *answer* cell (``MY_X = None``,
grade id ``exN_answer``) followed by a locked *test* cell (grade id ``exN``, with points) that calls
:func:`mclab.lab.exercise.check`. The solutions and the hidden tests live in the repository's
``instructor/solutions.py`` (:func:`solutions` loads it; the installed package carries no answer key), never in a
notebook: :func:`source_notebook` writes them into nbgrader's ``### BEGIN SOLUTION`` / ``### BEGIN HIDDEN TESTS``
regions, :func:`assignments` lets nbgrader's ``generate_assignment`` strip them again into the student release, and
:func:`grade` autogrades submissions (nbgrader's ``DIR/<student>/<assignment>/<notebook>.ipynb``) in FAST mode with
``MCLAB_GRADE=1`` set, so a wrong or missing answer fails its test cell, then writes the grade table (CSV and HTML,
student × exercise with totals). Everything runs offline in a course directory under ``build/``. ``make assignments``
and ``make grade`` call :func:`main`; the README's *For teachers* section describes the workflow.
"""
from __future__ import annotations

import argparse
import functools
import html
import importlib.util
import os
import shutil
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import nbformat

from mclab.lab import exercise
from mclab.lab.notebooks import KERNEL_ENV

__all__ = ["KINDS", "KEY", "solutions", "exercise_cells", "source_notebook", "submission", "write_course",
           "assignments", "inject_parameters", "grade", "grade_table", "main"]

KINDS = ("right", "wrong", "blank")  # synthetic submissions: the solutions, the plausible slips, nothing answered
_SOLUTION_BEGIN, _SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
_HIDDEN_BEGIN, _HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


KEY = Path(__file__).resolve().parents[2] / "instructor" / "solutions.py"  # the answer key, in the repository only


@functools.lru_cache(maxsize=None)
def solutions(path: Path = KEY) -> dict[str, dict[str, Any]]:
    """The answer key: notebook stem -> grade id (``ex1``...) -> ``Solution`` (``answer``, ``wrong``, ``hidden``:
    code strings), read from ``path`` (the repository's ``instructor/solutions.py``). The key is not part of the
    installed package; without the repository's copy this raises ``FileNotFoundError`` saying so."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"the answer key {path} is absent: it ships with the mclab repository, not with the "
                                "installed package; run the grader from a checkout of the repository")
    spec = importlib.util.spec_from_file_location("mclab_instructor_solutions", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the key's Solution class is built
    spec.loader.exec_module(module)
    return module.SOLUTIONS


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def exercise_cells(nb) -> dict[str, tuple[int, int]]:
    """Map each exercise's grade id (``ex1``...) to the indices of its (answer cell, test cell) in ``nb``.

    Raises ``ValueError`` when an answer cell has no test cell or the other way round.
    """
    ids = {_grade_id(c): i for i, c in enumerate(nb.cells) if _grade_id(c)}
    tests = {g: i for g, i in ids.items() if not g.endswith("_answer")}
    answers = {g[: -len("_answer")]: i for g, i in ids.items() if g.endswith("_answer")}
    if set(tests) != set(answers):
        raise ValueError(f"exercise cells do not pair up: tests {sorted(tests)}, answers {sorted(answers)}")
    return {g: (answers[g], tests[g]) for g in sorted(tests)}


def _solutions(stem: str, nb) -> dict[str, Any]:
    cells = exercise_cells(nb)
    sols = solutions().get(stem, {})
    if set(sols) != set(cells):
        raise ValueError(f"{stem}: instructor/solutions.py has {sorted(sols)} for exercises {sorted(cells)}")
    return sols


def source_notebook(path: str | Path):
    """Return the instructor's nbgrader source of the notebook at ``path``: solutions and hidden tests filled in."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    sols = _solutions(path.stem, nb)
    for gid, (a, t) in exercise_cells(nb).items():
        s = sols[gid]
        nb.cells[a].source = f"{nb.cells[a].source.rstrip()}\n{_SOLUTION_BEGIN}\n{s.answer}\n{_SOLUTION_END}"
        if s.hidden:
            nb.cells[t].source = f"{nb.cells[t].source.rstrip()}\n{_HIDDEN_BEGIN}\n{s.hidden}\n{_HIDDEN_END}"
    return nb


def submission(path: str | Path, kind: str):
    """A synthetic submission of the notebook at ``path``: ``kind`` is ``"right"`` (every answer cell holds the
    solution), ``"wrong"`` (a plausible slip: a unit, a neighbouring value, the wrong side of a ratio) or ``"blank"``
    (the learner's copy, nothing answered)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {', '.join(KINDS)}")
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    sols = _solutions(path.stem, nb)
    if kind != "blank":
        for gid, (a, _) in exercise_cells(nb).items():
            nb.cells[a].source = sols[gid].answer if kind == "right" else sols[gid].wrong
    return nb


def _config(root: Path, timeout_s: int):
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    c.ClearSolutions.code_stub = {"python": ""}  # the answer cell keeps its `MY_X = None` line, nothing else
    c.Execute.timeout = timeout_s
    c.Execute.kernel_name = "python3"
    return c


def _api(root: Path, timeout_s: int = 600):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    c = _config(root, timeout_s)
    return NbGraderAPI(coursedir=CourseDirectory(config=c), config=c)


@contextmanager
def _environment(**env: str) -> Iterator[None]:
    """Set ``env`` for the block, with this interpreter's bin folder first on PATH (nbgrader calls ``alembic`` when
    it creates a gradebook; the kernels it starts inherit the rest)."""
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **env}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(result: dict, what: str) -> None:
    if not result.get("success"):
        raise RuntimeError(f"nbgrader {what} failed:\n{result.get('error') or result.get('log')}")


def write_course(root: str | Path, notebooks: Iterable[str | Path]) -> Path:
    """Write nbgrader's course directory at ``root`` (``source/<stem>/<name>.ipynb`` per notebook, one assignment per
    notebook) and generate each assignment's student release into ``root/release``. Returns ``root``."""
    root = Path(root)
    paths = [Path(p) for p in notebooks]
    if not paths:
        raise ValueError("notebooks is empty; give at least one notebook path")
    api = _api(root)
    with _environment():
        for p in paths:
            src = root / "source" / p.stem
            src.mkdir(parents=True, exist_ok=True)
            nbformat.write(source_notebook(p), src / p.name)
            _run(api.generate_assignment(p.stem, force=True, create=True), f"generate_assignment {p.stem}")
    return root


def assignments(notebooks: Iterable[str | Path], out: str | Path = "build") -> Path:
    """The student release of every notebook in ``out/assignments/<stem>/<name>.ipynb`` (no solutions, no hidden
    tests), from an nbgrader course written at ``out/nbgrader``. Returns the release folder."""
    out = Path(out)
    root = write_course(out / "nbgrader", notebooks)
    dest = out / "assignments"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(root / "release", dest)
    return dest


def inject_parameters(nb, **params):
    """Insert a cell tagged ``injected-parameters`` after the ``parameters`` cell, as papermill does
    (``inject_parameters(nb, FAST=True)``); returns ``nb``. Raises ``ValueError`` when no cell is tagged."""
    idx = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if idx is None:
        raise ValueError("the notebook has no cell tagged 'parameters'")
    cell = nbformat.v4.new_code_cell("# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items()),
                                     metadata={"tags": ["injected-parameters"]})
    if nb.get("nbformat_minor", 0) < 5:
        cell.pop("id", None)
    nb.cells.insert(idx + 1, cell)
    return nb


def _submitted(submissions: Path) -> list[tuple[str, str, Path]]:
    found = sorted((p.parts[-3], p.parts[-2], p) for p in submissions.glob("*/*/*.ipynb"))
    if not found:
        raise ValueError(f"submissions={str(submissions)!r} holds no DIR/<student>/<assignment>/<notebook>.ipynb")
    return found


def grade(submissions: str | Path, notebooks_dir: str | Path = "notebooks", out: str | Path = "build/grades",
          *, fast: bool = True, timeout_s: int = 600):
    """Autograde every submitted notebook under ``submissions`` and write ``out/grades.csv`` and ``out/grades.html``.

    Each submission runs in a fresh kernel with ``FAST = True`` injected (``fast``) and ``MCLAB_GRADE=1``; the
    source notebooks come from ``notebooks_dir``. Returns the grade table (a DataFrame: one row per student, one
    column per ``<assignment> exN``, and ``total``/``max``).
    """
    submissions, out, nb_dir = Path(submissions), Path(out), Path(notebooks_dir)
    found = _submitted(submissions)
    shutil.rmtree(out, ignore_errors=True)
    root = out / "course"
    names = sorted({(a, p.name) for _, a, p in found})
    for a, name in names:
        if not (nb_dir / name).is_file() or Path(name).stem != a:
            raise ValueError(f"submitted {a}/{name} is not a notebook of {str(nb_dir)!r} (assignment = notebook name)")
    write_course(root, [nb_dir / name for _, name in names])
    for student, a, p in found:
        dest = root / "submitted" / student / a
        dest.mkdir(parents=True, exist_ok=True)
        nb = nbformat.read(p, as_version=4)
        nbformat.write(inject_parameters(nb, FAST=True) if fast else nb, dest / p.name)
    api = _api(root, timeout_s)
    env = {**KERNEL_ENV, exercise.GRADE_ENV: "1"}
    from sqlalchemy.exc import SAWarning  # nbgrader's gradebook session warns on every new submission

    with _environment(**env), warnings.catch_warnings():  # the kernels nbgrader starts inherit the environment
        warnings.simplefilter("ignore", SAWarning)
        for student, a in sorted({(s, a) for s, a, _ in found}):
            _run(api.autograde(a, student, force=True, create=True), f"autograde {student}/{a}")
    table = grade_table(root)
    table.to_csv(out / "grades.csv")
    (out / "grades.html").write_text(_html(table), encoding="utf-8")
    return table


def grade_table(root: str | Path):
    """The gradebook of the course at ``root`` as a DataFrame: student × ``<assignment> exN`` scores, ``total``,
    ``max``."""
    import pandas as pd
    from nbgrader.api import Gradebook

    root = Path(root)
    rows: dict[str, dict[str, float]] = {}
    maxima: dict[str, float] = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for a in gb.assignments:
            for sub in a.submissions:
                for nb in sub.notebooks:
                    for g in nb.grades:
                        col = f"{a.name} {g.name}"
                        rows.setdefault(sub.student.id, {})[col] = float(g.score)
                        maxima[col] = float(g.max_score)
    cols = sorted(maxima)
    df = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols).fillna(0.0).sort_index()
    df.index.name = "student"
    df["total"] = df[cols].sum(axis=1)
    df["max"] = sum(maxima.values())
    return df


def _html(table) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Grades</title><style>"
            "body{font-family:sans-serif}td,th{padding:2px 8px;text-align:right}</style></head><body>"
            f"<h1>Grades</h1><p>{html.escape(str(len(table)))} student(s); one point per exercise test cell, "
            "autograded by nbgrader in FAST mode.</p>" + table.to_html(float_format=lambda v: f"{v:g}")
            + "</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m mclab.lab.grading assignments`` / ``grade SUBMISSIONS`` (the Makefile's targets)."""
    p = argparse.ArgumentParser(prog="python -m mclab.lab.grading", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("assignments", help="student releases of every notebook into OUT/assignments")
    a.add_argument("--notebooks", default="notebooks")
    a.add_argument("--out", default="build")
    g = sub.add_parser("grade", help="autograde DIR/<student>/<assignment>/<notebook>.ipynb, write the grade table")
    g.add_argument("submissions")
    g.add_argument("--notebooks", default="notebooks")
    g.add_argument("--out", default="build/grades")
    g.add_argument("--full", action="store_true", help="run the submissions' full parameters, not FAST mode")
    args = p.parse_args(argv)
    if args.cmd == "assignments":
        paths = sorted(Path(args.notebooks).glob("*.ipynb"))
        dest = assignments(paths, args.out)
        print(f"{len(paths)} student releases in {dest}/<assignment>/<notebook>.ipynb")
        return 0
    table = grade(args.submissions, args.notebooks, args.out, fast=not args.full)
    print(table.to_string())
    print(f"grade table: {Path(args.out) / 'grades.csv'} and {Path(args.out) / 'grades.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

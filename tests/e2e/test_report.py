"""The HTML report (``mclab report``'s pages) opened in the browser, offline: the index lists every notebook,
every page shows each figure its notebook drew, no page shows an error, and widget notebooks say that the
sliders need a running kernel.

The pages are rendered with :func:`mclab.notebooks.render_report` from FAST runs. A FAST run that ``make test``
left in build/test-notebooks/ is reused when it is newer than its notebook (CI runs ``make test`` first);
any other notebook is executed here, as ``make report FAST=1`` would.
"""
from __future__ import annotations

import re

import nbformat
import pytest

from mclab import notebooks
from mclab.record import load

from .conftest import ART, NB_DIR, widget_notebooks

pytestmark = pytest.mark.e2e

TEST_RUNS = ART.parent / "test-notebooks"  # tests/test_notebooks.py's OUT
ERROR = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception): ", re.M)


def _reused(src) -> notebooks.NotebookRun | None:
    done, metrics = TEST_RUNS / src.name, TEST_RUNS / f"{src.stem}.metrics.json"
    if not (done.exists() and metrics.exists()) or done.stat().st_mtime < src.stat().st_mtime:
        return None
    nb = nbformat.read(done, 4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return notebooks.NotebookRun(number=src.name[:2], name=src.name, output=str(done), fast=True,
                                 status="failed" if errors else "ok",
                                 seconds=round(nb.metadata.get("papermill", {}).get("duration") or 0.0, 2),
                                 metrics=load(metrics), error=f"{errors[0]['ename']}" if errors else None)


@pytest.fixture(scope="session")
def report():
    runs = []
    for src in notebooks.select(notebooks.discover(NB_DIR), None):
        runs.append(_reused(src) or notebooks.run_notebook(src, ART / "report-runs", fast=True, timeout_s=300))
    summary = notebooks.RunSummary(fast=True, out_dir=str(ART / "report-runs"), runs=runs)
    print("report from: " + ", ".join(f"{r.name[:2]} ({'make test' if str(TEST_RUNS) in r.output else 'run here'})"
                                       for r in runs))
    return summary, notebooks.render_report(summary, ART / "report")


@pytest.fixture
def offline(page):
    """The page with every request outside file:// and data: refused (no CDN, as on CI)."""
    page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
    return page


def test_index_lists_every_notebook(report, offline):
    summary, index = report
    offline.goto(index.as_uri())
    links = offline.locator("table a").all_inner_texts()
    assert links == [p.name for p in notebooks.select(notebooks.discover(NB_DIR), None)]
    bad = offline.locator("tr.bad").all_inner_texts()
    assert not bad, f"the report marks notebooks as failed: {bad}"
    offline.screenshot(path=str(ART / "report-index.png"), full_page=True)


def _figures(path) -> int:
    nb = nbformat.read(path, 4)
    images = {"image/png", "image/jpeg"}
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if images & set(o.get("data", {})))


@pytest.mark.parametrize("path", sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.name)
def test_page_renders_its_figures_and_no_error(report, offline, path):
    summary, index = report
    run = next(r for r in summary.runs if r.name == path.name)
    offline.goto((index.parent / f"{path.stem}.html").as_uri())
    shown = offline.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output img')]
        .map(i => i.complete && i.naturalWidth > 0)""")
    expected = _figures(run.output)
    assert len(shown) >= expected and all(shown), \
        f"{path.name}: {sum(shown)} of {expected} figures render ({len(shown)} <img> on the page)"
    stderr = offline.locator('[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    errors = [t.strip().splitlines()[-1][:200] for t in stderr if ERROR.search(t)]
    assert not errors, f"{path.name}: the page shows errors: {errors}"
    if path in widget_notebooks():
        assert offline.get_by_text(re.compile(r"needs? a running (Jupyter )?kernel")).count(), \
            f"{path.name}: has widgets, but its static page does not say that they need a running kernel"
    offline.screenshot(path=str(ART / f"report-{path.stem}.png"))

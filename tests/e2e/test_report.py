"""The HTML report (``mclab report``'s pages) opened in the browser, offline: the index lists every notebook with
its headline findings beside the source's claims — each printed number traced back to the metric the notebook
recorded —, a thumbnail of its key figure linking to its page, the machine in the header and the raw metrics
folded away; every page shows each figure its notebook drew, no page shows an error, and widget notebooks say
that the sliders need a running kernel.

The pages are rendered with :func:`mclab.lab.report.render_report` from FAST runs. A FAST run that ``make test``
left in build/test-notebooks/ is reused when it is newer than its notebook (CI runs ``make test`` first);
any other notebook is executed here, as ``make report FAST=1`` would.
"""
from __future__ import annotations

import json
import re
import statistics

import nbformat
import pytest

from mclab import hw
from mclab.lab import notebooks
from mclab.lab.headlines import HEADLINES
from mclab.lab.record import load
from mclab.lab.report import MARKS, NOT_MEASURABLE, NOT_RECORDED, render_report

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
    return notebooks.NotebookRun(number=src.name.split("_", 1)[0], name=src.name, output=str(done), fast=True,
                                 status="failed" if errors else "ok",
                                 seconds=round(nb.metadata.get("papermill", {}).get("duration") or 0.0, 2),
                                 metrics=load(metrics), error=f"{errors[0]['ename']}" if errors else None)


@pytest.fixture(scope="session")
def report():
    runs = []
    for src in notebooks.select(notebooks.discover(NB_DIR), None):
        runs.append(_reused(src) or notebooks.run_notebook(src, ART / "report-runs", fast=True, timeout_s=300))
    summary = notebooks.RunSummary(fast=True, out_dir=str(ART / "report-runs"), runs=runs)
    print("report from: " + ", ".join(f"{r.number} ({'make test' if str(TEST_RUNS) in r.output else 'run here'})"
                                       for r in runs))
    return summary, render_report(summary, ART / "report")


@pytest.fixture
def offline(page):
    """The page with every request outside file:// and data: refused (no CDN, as on CI)."""
    page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
    return page


def test_index_lists_every_notebook(report, offline):
    summary, index = report
    offline.goto(index.as_uri())
    links = offline.locator("section.nb h2 a.page").all_inner_texts()
    assert links == [p.name for p in notebooks.select(notebooks.discover(NB_DIR), None)]
    bad = offline.locator("section.nb.bad h2").all_inner_texts()
    assert not bad, f"the report marks notebooks as failed: {bad}"
    for run in summary.runs:
        question = notebooks.chapter(run.number).question
        shown = offline.locator(f'section.nb[data-notebook="{run.number}"] .question').inner_text()
        assert shown == question, f"{run.name}: the index shows {shown!r} as its question, not {question!r}"
    offline.screenshot(path=str(ART / "report-index.png"), full_page=True)


def _resolve(metrics, path):
    """The recorded value at a data-path, read here without mclab.lab.report (a missing step raises KeyError)."""
    node = metrics
    for step in path:
        if isinstance(step, dict):
            node = next(x for x in node if all(x.get(k) == v for k, v in step.items()))
        elif isinstance(step, int):
            node = node[step]
        else:
            node = node[step]
    return node


def _expected(metrics, attrs):
    value = _resolve(metrics, json.loads(attrs["path"]))
    if attrs.get("agg"):
        items = list(value.values()) if isinstance(value, dict) else value
        value = {"mean": statistics.fmean, "min": min, "max": max, "len": len}[json.loads(attrs["agg"])](items)
    if isinstance(value, (bool, str)):
        return value
    value *= json.loads(attrs["scale"])
    if attrs.get("divideBy"):
        value /= _resolve(metrics, json.loads(attrs["divideBy"]))
    return value


def _matches(text: str, expected) -> bool:
    """The printed number equals ``expected`` to the precision printed (half a unit in its last digit)."""
    if isinstance(expected, bool):
        return text == ("yes" if expected else "no")
    if isinstance(expected, str):
        return text == expected
    number = text.replace(",", "").lstrip("+")
    mantissa, _, exponent = number.partition("e")
    tol = 0.5 * 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))
    return abs(float(number) - expected) <= tol * (1 + 1e-9)


FINDINGS_JS = """() => [...document.querySelectorAll('section.nb')].map(s => ({
    notebook: s.dataset.notebook,
    rows: [...s.querySelectorAll('tr.finding')].map(tr => {
        const v = tr.querySelector('.value');
        return {text: v.innerText.trim(), missing: v.classList.contains('missing'), data: {...v.dataset},
                mark: tr.querySelector('.mark').innerText.trim(), claim: tr.querySelector('.claim').innerText.trim(),
                sentence: tr.querySelector('.sentence').innerText.trim()};
    })}))"""


def test_index_findings_equal_the_recorded_metrics(report, offline):
    summary, index = report
    offline.goto(index.as_uri())
    sections = {s["notebook"]: s["rows"] for s in offline.evaluate(FINDINGS_JS)}
    runs = {r.number: r for r in summary.runs}
    assert set(sections) == set(runs)
    checked = 0
    for number, rows in sections.items():
        metrics = runs[number].metrics
        want = len(HEADLINES.get(number, ()))
        assert len(rows) == want, f"notebook {number}: {len(rows)} findings on the index, {want} in HEADLINES"
        if number in HEADLINES:
            assert 3 <= want <= 5, f"notebook {number}: {want} headlines; a notebook shows three to five"
        for row in rows:
            where = f"notebook {number}, {row['sentence']!r}"
            assert row["claim"], f"{where}: no claim beside the finding"
            assert row["mark"] in MARKS, f"{where}: mark {row['mark']!r} is not one of {MARKS}"
            try:
                expected = _expected(metrics, row["data"])
            except (KeyError, IndexError, StopIteration, TypeError):
                assert row["missing"] and row["mark"] in (NOT_RECORDED, NOT_MEASURABLE), \
                    f"{where}: its metric {row['data']['path']} was not recorded, but the index shows {row['text']!r}"
                continue
            assert not row["missing"], f"{where}: says {row['text']!r} but {row['data']['path']} = {expected!r}"
            assert _matches(row["text"], expected), \
                f"{where}: shows {row['text']!r}, the recorded metric {row['data']['path']} gives {expected!r}"
            checked += 1
    print(f"{checked} findings checked against the recorded metrics")
    assert checked >= 3 * len(summary.runs) // 2, f"only {checked} findings had a recorded number"


def test_index_header_thumbnails_and_folded_metrics(report, offline):
    summary, index = report
    offline.goto(index.as_uri())
    header = offline.locator("header dl.machine").inner_text()
    cpu = hw.cpu_info()
    assert cpu.model in header, f"the header does not name this CPU ({cpu.model!r}): {header!r}"
    for feature in (k for k, on in cpu.features.items() if on):
        assert feature in header, f"the header omits the CPU feature {feature}"
    assert "FAST" in header and re.search(r"\d{4}-\d{2}-\d{2}", header), f"no mode or date in {header!r}"
    for run in summary.runs:
        sec = offline.locator(f'section.nb[data-notebook="{run.number}"]')
        details = sec.locator("details")
        assert details.count() == 1 and details.get_attribute("open") is None, \
            f"{run.name}: the raw metrics are not folded away under one closed <details>"
        assert details.locator("tr").count() == len(run.metrics)
        if _figures(run.output):
            img = sec.locator("a > img.thumb")
            assert img.count() == 1, f"{run.name} drew figures, but the index has no thumbnail"
            loaded = img.evaluate("i => i.complete && i.naturalWidth > 0")
            href = sec.locator("a:has(img.thumb)").get_attribute("href")
            assert loaded, f"{run.name}: the thumbnail does not load"
            assert href == f"{run.name.removesuffix('.ipynb')}.html" and (index.parent / href).exists()
    height = offline.evaluate("() => document.documentElement.scrollHeight")
    assert height < 600 * len(summary.runs), f"the index is {height} px tall for {len(summary.runs)} notebooks"


def _figures(path) -> int:
    nb = nbformat.read(path, 4)
    images = {"image/png", "image/jpeg"}
    return sum(1 for c in nb.cells for o in c.get("outputs", []) if images & set(o.get("data", {})))


@pytest.mark.parametrize("path", list(notebooks.discover(NB_DIR).values()), ids=lambda p: p.name)
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

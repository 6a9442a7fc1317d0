"""mclab.lab.report and mclab.lab.headlines: the headline table, its formatting and marks, and the index page,
on synthetic metrics."""
from __future__ import annotations

import base64
import html
import io
import json
import re

import pytest

from mclab import hw
from mclab.lab import notebooks, report
from mclab.lab.headlines import HEADLINES, Headline, at_least, at_most, between, is_true, near
from mclab.lab.report import MET, NOT_MEASURABLE, NOT_MET, NOT_RECORDED, findings, format_value, lookup, value_of

TABLE = {
    "90": (
        Headline(("speedup",), "INT8 over FP32: {value} speed-up", "INT8: 2–4× faster", at_least(2), unit="×",
                 fmt=".2f"),
        Headline(("acc", "int8"), "INT8 reaches {value} top-1", "−1 to −2 %",
                 lambda v, m: 100 * m["acc"]["fp32"] - v <= 2, unit="%", fmt=".1f", scale=100),
        Headline(("sizes", {"variant": "fp32"}, "kb"), "INT8 is {value} smaller", "4× smaller", near(4, 0.05),
                 unit="×", fmt=".2f", divide_by=("sizes", {"variant": "int8"}, "kb")),
        Headline(("seeds",), "mean over seeds: {value}", "a claim", at_most(0.5), agg="mean"),
        Headline(("gpu_speedup",), "TensorRT: {value} speed-up", "2–5×", at_least(2), unit="×",
                 measured_if=("gpu_ran",)),
    ),
}
METRICS = {"speedup": 1.0312, "acc": {"fp32": 0.9333, "int8": 0.9222}, "seeds": [0.25, 0.75, 1.0],
           "sizes": [{"variant": "fp32", "kb": 400.0}, {"variant": "int8", "kb": 101.0}], "gpu_ran": False}


def _by_text(rows):
    return {r.headline.text: r for r in rows}


# ----------------------------------------------------------------------------- formatting


@pytest.mark.parametrize("value, fmt, text", [
    (True, "", "yes"), (False, "", "no"), ("bf16", "", "bf16"),
    (1.03123, ".2f", "1.03"), (0.0, ".1f", "0.0"), (-1.1111, "+.1f", "-1.1"), (1.1111, "+.1f", "+1.1"),
    (124667.3, ",.0f", "124,667"), (3.0, "d", "3"), (160, "d", "160"),
    (12.345, "", "12.3"), (0.000293, "", "0.000293"), (1234.0, "", "1,234"), (2542856, "", "2,542,856"),
    (0, "", "0"), (6.5632, "", "6.56"), (249.374, "", "249"),
])
def test_format_value(value, fmt, text):
    assert format_value(value, fmt) == text


def test_format_value_rejects_other_types():
    with pytest.raises(TypeError, match="value="):
        format_value([1, 2])


# ----------------------------------------------------------------------------- paths


def test_lookup_keys_indices_and_selectors():
    m = {"a": {"b": [10, 20, 30]}, "rows": [{"k": "x", "v": 1}, {"k": "y", "v": 2}], "0.5": 7}
    assert lookup(m, ("a", "b", 1)) == 20
    assert lookup(m, ("a", "b", -1)) == 30
    assert lookup(m, ("rows", {"k": "y"}, "v")) == 2
    assert lookup(m, ("0.5",)) == 7
    with pytest.raises(KeyError, match="a/c"):
        lookup(m, ("a", "c"))
    with pytest.raises(KeyError, match="no item 3"):
        lookup(m, ("a", "b", 3))
    with pytest.raises(KeyError, match="no item matches"):
        lookup(m, ("rows", {"k": "z"}, "v"))
    with pytest.raises(KeyError, match="selector needs a list"):
        lookup(m, ("a", {"k": "y"}))
    with pytest.raises(TypeError, match="path step"):
        lookup(m, (1.5,))


def test_value_of_scale_agg_and_divisor():
    h = _by_text(findings("90", METRICS, TABLE))
    assert h["INT8 reaches {value} top-1"].value == pytest.approx(92.22)
    assert h["INT8 is {value} smaller"].value == pytest.approx(400 / 101)
    assert h["mean over seeds: {value}"].value == pytest.approx(2 / 3)
    zero = Headline(("a",), "{value}", "c", at_least(1), divide_by=("b",))
    with pytest.raises(TypeError, match="not a non-zero number"):
        value_of(zero, {"a": 1.0, "b": 0})
    with pytest.raises(TypeError, match="not a number"):
        value_of(Headline(("a",), "{value}", "c", at_least(1), scale=100), {"a": "text"})


# ----------------------------------------------------------------------------- marks


def test_marks_met_not_met_and_measurable():
    rows = _by_text(findings("90", METRICS, TABLE))
    speed = rows["INT8 over FP32: {value} speed-up"]
    assert (speed.mark, speed.value_text, speed.sentence) == (NOT_MET, "1.03", "INT8 over FP32: 1.03× speed-up")
    acc = rows["INT8 reaches {value} top-1"]
    assert (acc.mark, acc.sentence) == (MET, "INT8 reaches 92.2 % top-1")
    assert rows["INT8 is {value} smaller"].mark == MET            # 3.96 within 5 % of 4
    assert rows["mean over seeds: {value}"].mark == NOT_MET        # 0.67 > 0.5
    gpu = rows["TensorRT: {value} speed-up"]
    assert gpu.mark == NOT_MEASURABLE and gpu.value is None and "gpu_ran is false" in gpu.why
    assert gpu.sentence.endswith("not measured here")


def test_a_faster_run_flips_the_mark():
    rows = findings("90", {**METRICS, "speedup": 2.5, "gpu_ran": True, "gpu_speedup": 1.5}, TABLE)
    marks = {r.headline.path[0]: r.mark for r in rows}
    assert marks["speedup"] == MET and marks["gpu_speedup"] == NOT_MET


def test_measured_if_reason_string_and_callable():
    h = Headline(("x",), "x = {value}", "claim", at_least(1), measured_if=("why",))
    (row,) = findings("91", {"x": 3.0, "why": "tensorrt is not installed"}, {"91": (h,)})
    assert row.mark == NOT_MEASURABLE and row.why == "tensorrt is not installed" and row.value_text == "3.00"
    h2 = Headline(("x",), "x = {value}", "claim", at_least(1),
                  measured_if=lambda m: True if m["kind"] == "measured" else f"kind is {m['kind']}")
    assert findings("91", {"x": 3.0, "kind": "measured"}, {"91": (h2,)})[0].mark == MET
    assert findings("91", {"x": 3.0, "kind": "estimated"}, {"91": (h2,)})[0].why == "kind is estimated"
    # the metric that says whether it could be measured is itself missing: not recorded, never a crash
    assert findings("91", {"x": 3.0}, {"91": (h2,)})[0].mark == NOT_RECORDED


def test_judge_none_is_not_measurable_with_its_reason():
    h = Headline(("x",), "x = {value}", "phones draw 1–5 W", None, unit="W", why="needs a phone")
    (row,) = findings("91", {"x": 19.8}, {"91": (h,)})
    assert (row.mark, row.why, row.sentence) == (NOT_MEASURABLE, "needs a phone", "x = 19.8 W")


def test_missing_metrics_read_not_recorded_and_never_raise():
    rows = findings("90", {}, TABLE)
    assert [r.mark for r in rows] == [NOT_RECORDED] * len(TABLE["90"])
    assert all(r.value is None and r.sentence.endswith("not recorded") for r in rows)
    # a malformed metric (a string where a dict should be) and a judge whose reference is missing
    rows = _by_text(findings("90", {"speedup": "n/a", "acc": {"int8": 0.9}}, TABLE))
    assert rows["INT8 over FP32: {value} speed-up"].mark == NOT_RECORDED
    acc = rows["INT8 reaches {value} top-1"]
    assert acc.mark == NOT_RECORDED and acc.value_text == "90.0" and "reference metric" in acc.why


def test_finding_as_dict_is_json():
    rows = findings("90", METRICS, TABLE)
    d = json.loads(json.dumps([r.as_dict() for r in rows]))
    assert d[0]["mark"] == NOT_MET and d[0]["headline"]["path"] == ["speedup"] and "judge" not in d[0]["headline"]


def test_findings_boundaries():
    assert findings("99", METRICS, TABLE) == []
    with pytest.raises(TypeError, match="metrics must be a dict"):
        findings("90", [1, 2], TABLE)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"path": "speedup"}, TypeError, "path"),
    ({"path": ()}, TypeError, "path"),
    ({"text": "no slot"}, ValueError, "{value}"),
    ({"agg": "median"}, ValueError, "agg='median'"),
    ({"scale": 0}, ValueError, "scale=0"),
    ({"claim": " "}, ValueError, "claim is empty"),
    ({"judge": None}, ValueError, "needs why="),
    ({"fmt": ".2q"}, ValueError, "fmt='.2q'"),
    ({"divide_by": "b"}, TypeError, "divide_by"),
])
def test_headline_rejects_bad_definitions(kwargs, error, match):
    base = {"path": ("a",), "text": "{value}", "claim": "c", "judge": at_least(1)}
    with pytest.raises(error, match=re.escape(match)):
        Headline(**{**base, **kwargs})


def test_judges():
    m = {}
    assert at_least(2)(2.0, m) and not at_least(2)(1.99, m)
    assert at_most(100)(100, m) and not at_most(100)(100.1, m)
    assert between(2, 3)(2.5, m) and not between(2, 3)(3.5, m)
    assert near(4, 0.05)(3.81, m) and not near(4, 0.05)(3.79, m)
    assert is_true()(True, m) and not is_true()(1, m)
    with pytest.raises(ValueError, match="lo must be"):
        between(3, 2)
    with pytest.raises(ValueError, match="rel"):
        near(4, 5)


# ----------------------------------------------------------------------------- the kit's own table


def _recorded_names(path) -> set[str]:
    """Keyword names passed to mclab.record(...) anywhere in a notebook."""
    nb = json.loads(path.read_text())
    src = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    names = set()
    for call in re.finditer(r"mclab\.record\((.*?)\n\)", src, re.S):
        names |= set(re.findall(r"(?:^|[\s(,])([a-z][a-z0-9_]*)\s*=(?!=)", call.group(1)))
    return names


def test_every_notebook_has_three_to_five_headlines():
    numbers = [f"{i:02d}" for i in range(20)] + ["13b"]
    for n in numbers:
        assert 3 <= len(HEADLINES.get(n, ())) <= 5, f"notebook {n}: {len(HEADLINES.get(n, ()))} headlines"
    curriculum = {c.number for c in notebooks.CURRICULUM}
    assert set(HEADLINES) <= curriculum, f"headlines for notebooks not in CURRICULUM: {set(HEADLINES) - curriculum}"


def test_headlines_read_metrics_their_notebook_records():
    on_disk = notebooks.discover()
    for n, rows in HEADLINES.items():
        if n not in on_disk:
            continue
        names = _recorded_names(on_disk[n])
        assert names, f"{on_disk[n].name}: found no mclab.record(...) call"
        for h in rows:
            for p in (h.path, h.divide_by):
                if p is not None:
                    assert p[0] in names, f"{on_disk[n].name} does not record {p[0]!r} (headline {h.text!r})"


# ----------------------------------------------------------------------------- the index page


def _png(width=800, height=400, colour=(200, 30, 30)) -> str:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _notebook(path, sections):
    cells = []
    for heading, png in sections:
        cells.append({"cell_type": "markdown", "metadata": {}, "source": f"## {heading}\n\ntext"})
        outputs = [{"output_type": "display_data", "metadata": {}, "data": {"image/png": png}}] if png else []
        cells.append({"cell_type": "code", "metadata": {}, "source": "plot()", "outputs": outputs,
                      "execution_count": 1})
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_key_figure_by_section_with_fallback(tmp_path):
    red, blue = _png(colour=(255, 0, 0)), _png(colour=(0, 0, 255))
    nb = _notebook(tmp_path / "a.ipynb", [("1. Setup", None), ("2. The roofline", red), ("3. More", blue)])
    assert report.key_figure(nb, "ROOFLINE") == base64.b64decode(red)
    assert report.key_figure(nb, "no such section") == base64.b64decode(blue)
    assert report.key_figure(nb) == base64.b64decode(blue)
    assert report.key_figure(_notebook(tmp_path / "b.ipynb", [("1. Text only", None)])) is None
    assert report.key_figure(tmp_path / "missing.ipynb") is None


def _run(tmp_path, number, metrics, *, status="ok", error=None, png=True):
    name = f"{number}_demo.ipynb"
    out = _notebook(tmp_path / name, [("1. Key", _png() if png else None)])
    return notebooks.NotebookRun(number=number, name=name, output=str(out), fast=True, status=status,
                                 seconds=1.5, metrics=metrics, error=error)


def test_render_index(tmp_path, monkeypatch):
    monkeypatch.setitem(report.HEADLINES, "90", TABLE["90"])
    monkeypatch.setitem(report.KEY_FIGURE, "90", "key")
    hostile = {"<script>alert(1)</script>": "a & b <i>", "threads": 2}
    runs = [_run(tmp_path, "90", {**METRICS, **hostile}),
            _run(tmp_path, "91", {"x": 1}, status="failed", error="ValueError: <bad> & worse", png=False)]
    chapters = [notebooks.Chapter("90", "Demo <one>", "Does it <escape>?", ()),
                notebooks.Chapter("91", "Two", "Q2", ())]
    index = report.render_index(runs, tmp_path / "out", fast=True, pages={"90": "90_demo.html"}, chapters=chapters)
    text = index.read_text()
    # escaping: no raw tag from a metric, an error or a chapter reaches the page
    assert "<script>" not in text and "<i>" not in text and "<bad>" not in text and "Demo <one>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "a &amp; b &lt;i&gt;" in text
    assert "Does it &lt;escape&gt;?" in text and "ValueError: &lt;bad&gt; &amp; worse" in text
    # the machine, the mode, the threads the runs recorded
    assert html.escape(hw.cpu_info().model) in text and "FAST" in text and "timed runs used 2" in text
    # the thumbnail, shrunk, links to the page; a run without figures says so
    thumb = tmp_path / "out" / "thumbs" / "90_demo.png"
    from PIL import Image
    assert Image.open(thumb).width == 360
    assert '<a href="90_demo.html"><img class="thumb" src="thumbs/90_demo.png"' in text
    assert "this notebook drew no figure" in text and "section class=\"nb bad\" id=\"nb-91\"" in text
    # raw metrics folded away, every one listed
    assert text.count("<details>") == 2 and "all 7 recorded metrics" in text
    # each finding's number carries its path, scale, aggregate and divisor
    spans = re.findall(r'<span class="value" data-path="([^"]+)"[^>]*>([^<]+)</span>', text)
    assert {html.unescape(p): shown for p, shown in spans} == {
        '["speedup"]': "1.03", '["acc", "int8"]': "92.2", '["sizes", {"variant": "fp32"}, "kb"]': "3.96",
        '["seeds"]': "0.667"}
    assert 'data-divide-by="[&quot;sizes&quot;, {&quot;variant&quot;: &quot;int8&quot;}, &quot;kb&quot;]"' in text
    assert 'data-agg="&quot;mean&quot;"' in text and 'data-scale="100"' in text
    assert len(re.findall(r'class="value missing"[^>]*>not measured here<', text)) == 1   # gpu_ran is false
    assert ("2 <span class=\"mark mark-met\">met</span> · 2 <span class=\"mark mark-not-met\">not met</span> · "
            "1 <span class=\"mark mark-not-measurable-here\">") in text


def test_render_index_survives_a_run_with_no_metrics(tmp_path, monkeypatch):
    monkeypatch.setitem(report.HEADLINES, "90", TABLE["90"])
    run = _run(tmp_path, "90", {}, status="timeout", error="timed out after 300 s", png=False)
    text = report.render_index([run], tmp_path / "out", fast=False, chapters=()).read_text()
    assert len(re.findall(r'class="value missing"[^>]*>not recorded<', text)) == len(TABLE["90"])
    assert f'{len(TABLE["90"])} <span class="mark mark-not-recorded">' in text and "full (the learner" in text


def test_machine_reports_threads_and_a_different_cpu(tmp_path):
    runs = [_run(tmp_path, "00", {"cpu_features": ["AVX-9000"], "threads": 4}, png=False),
            _run(tmp_path, "09", {"threads": 1}, png=False)]
    m = report.machine(runs)
    assert m["cpu"] == hw.cpu_info().model and m["timed_threads"] == [1, 4]
    assert m["recorded_features"] == ["AVX-9000"]

"""The report a teacher shares: each notebook's headline findings beside the source material's claims.

The table of headlines, their claims and judges is :data:`mclab.lab.headlines.HEADLINES` (re-exported here).
:func:`findings` applies one notebook's rows to its metrics; a metric that was not recorded reads "not recorded"
and never raises. :func:`render_report` turns a run of :func:`mclab.lab.notebooks.run_all` into HTML pages, one per
executed notebook, beside an index that :func:`render_index` writes: the machine in the header, per notebook its
question, findings, a thumbnail of its key figure linking to the notebook's page, and the raw metrics folded away.
``mclab report`` is the CLI. Introduced in notebook 00 (``make report``).

The index page carries each metric path, scale, aggregate and divisor in ``data-`` attributes, so a reader (and
tests/e2e/test_report.py) can trace every printed number back to the metric it came from.
"""
from __future__ import annotations

import base64
import binascii
import html
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .. import hw
from .headlines import (
    AGGREGATES,
    HEADLINES,
    KEY_FIGURE,
    Headline,
    Path_,
    at_least,
    at_most,
    between,
    is_true,
    near,
)
from .notebooks import CURRICULUM, Chapter, NotebookRun, RunSummary

__all__ = [
    # the table (defined in mclab.lab.headlines)
    "Headline", "HEADLINES", "KEY_FIGURE", "AGGREGATES",
    # marks
    "MET", "NOT_MET", "NOT_MEASURABLE", "NOT_RECORDED", "MARKS",
    # judges (defined in mclab.lab.headlines)
    "at_least", "at_most", "between", "near", "is_true",
    # results
    "Finding",
    # verbs
    "lookup", "value_of", "format_value", "findings", "machine", "key_figure", "render_index", "render_report",
]

MET, NOT_MET, NOT_MEASURABLE, NOT_RECORDED = "met", "not met", "not measurable here", "not recorded"
MARKS = (MET, NOT_MET, NOT_MEASURABLE, NOT_RECORDED)

# ----------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """One headline applied to one notebook's metrics: the sentence, the number and the mark."""

    notebook: str
    sentence: str        # the headline's text with the formatted value (or "not recorded") in place
    value_text: str      # the formatted number, or "not recorded"
    value: Any           # the number it was formatted from (agg × scale ÷ divisor), None when not recorded
    unit: str
    claim: str
    mark: str            # one of MARKS
    why: str             # why a row is not measurable or not recorded; "" otherwise
    headline: Headline

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["headline"] = {k: v for k, v in d["headline"].items() if k != "judge"}
        return d


_MISSING = object()


def lookup(metrics: Any, path: Path_) -> Any:
    """The value at ``path`` inside ``metrics``; raises ``KeyError`` naming the step that is missing."""
    node = metrics
    for i, step in enumerate(path):
        where = "/".join(json.dumps(s) if not isinstance(s, str) else s for s in path[:i + 1])
        if isinstance(step, Mapping):
            if not isinstance(node, list):
                raise KeyError(f"{where}: a selector needs a list, found {type(node).__name__}")
            hit = next((x for x in node if isinstance(x, Mapping) and all(x.get(k, _MISSING) == v
                                                                         for k, v in step.items())), _MISSING)
            if hit is _MISSING:
                raise KeyError(f"{where}: no item matches")
            node = hit
        elif isinstance(step, int) and not isinstance(step, bool):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                raise KeyError(f"{where}: no item {step}")
            node = node[step]
        elif isinstance(step, str):
            if not isinstance(node, Mapping) or step not in node:
                raise KeyError(f"{where}: not recorded")
            node = node[step]
        else:
            raise TypeError(f"path step {step!r} must be a key (str), an index (int) or a selector (dict)")
    return node


def value_of(h: Headline, metrics: Mapping[str, Any]) -> Any:
    """The number a headline prints, before formatting: ``agg(metric) * scale`` (÷ the divisor); bools and
    strings pass through. Raises ``KeyError`` when a metric is missing and ``TypeError`` when it is not a number."""
    raw = lookup(metrics, h.path)
    if h.agg is not None:
        items = list(raw.values()) if isinstance(raw, Mapping) else raw
        if not isinstance(items, list):
            raise TypeError(f"agg={h.agg!r} needs a list or a dict, found {type(raw).__name__}")
        raw = AGGREGATES[h.agg](items)
    if isinstance(raw, (bool, str)) and h.divide_by is None and h.scale == 1:
        return raw
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise TypeError(f"{'/'.join(map(str, h.path))} is {type(raw).__name__}, not a number")
    value = raw * h.scale
    if h.divide_by is not None:
        den = lookup(metrics, h.divide_by)
        if isinstance(den, bool) or not isinstance(den, (int, float)) or den == 0:
            raise TypeError(f"divisor {'/'.join(map(str, h.divide_by))} = {den!r} is not a non-zero number")
        value = value / den
    return value


def format_value(value: Any, fmt: str = "") -> str:
    """A value as the report prints it: bools as yes/no, strings as they are, numbers with ``fmt`` or, without
    one, three significant figures (integers whole, with thousands separators)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if not isinstance(value, (int, float)):
        raise TypeError(f"value={value!r} is {type(value).__name__}; the report prints numbers, bools and text")
    if not math.isfinite(value):
        return str(value)
    if fmt:
        if fmt.endswith("d"):
            value = round(value)
        return format(value, fmt)
    if isinstance(value, int) or (abs(value) >= 100 and float(value).is_integer()):
        return f"{int(value):,}"
    if value == 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _absent(mark: str) -> str:
    """What stands in for a missing number: "not measured here" when the run said it could not, else "not recorded"."""
    return "not measured here" if mark == NOT_MEASURABLE else NOT_RECORDED


def _unit_sep(unit: str) -> str:
    """No space before ×, one before every other unit (1.5×, 12.3 ms, 97.8 %)."""
    return "" if not unit or unit.startswith("×") else " "


def findings(number: str, metrics: Mapping[str, Any],
             table: Mapping[str, Sequence[Headline]] | None = None) -> list[Finding]:
    """Apply notebook ``number``'s headlines to its recorded ``metrics``; never raises for a missing or
    malformed metric (that row reads "not recorded"). Returns [] for a notebook without headlines."""
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict of recorded metrics, got {type(metrics).__name__}")
    out = []
    for h in (HEADLINES if table is None else table).get(number, ()):
        why, measurable, ruled_out = "", h.judge is not None, False
        if h.measured_if is not None:
            try:
                flag = h.measured_if(metrics) if callable(h.measured_if) else lookup(metrics, h.measured_if)
            except KeyError as e:  # the run did not say whether it could measure: that is "not recorded"
                flag, why = False, f"{e}".strip("'\"")
            else:
                ruled_out = isinstance(flag, str) or not flag
                if ruled_out:
                    why = flag if isinstance(flag, str) else "not measured in this run" + (
                        "" if callable(h.measured_if) else f" ({'/'.join(map(str, h.measured_if))} is false)")
            measurable = measurable and not isinstance(flag, str) and bool(flag)
        try:
            value = value_of(h, metrics)
        except (KeyError, TypeError) as e:
            value, text = None, NOT_RECORDED
            mark = NOT_MEASURABLE if ruled_out else NOT_RECORDED
            why = why or str(e).strip("'\"")
        else:
            text = format_value(value, h.fmt)
            if h.measured_if is not None and not ruled_out and not measurable:
                mark = NOT_RECORDED  # the metric that says whether it was measurable is missing
            elif not measurable:
                mark, why = NOT_MEASURABLE, why or h.why
            else:
                try:
                    mark = MET if h.judge(value, metrics) else NOT_MET
                except (KeyError, TypeError, IndexError) as e:  # the judge needs a metric this run lacks
                    mark, why = NOT_RECORDED, f"the claim's reference metric is missing: {e}"
        sentence = (h.text.replace("{value}", f"{text}{_unit_sep(h.unit)}{h.unit}".strip()) if value is not None
                    else f"{h.text.replace('{value}', '…')} — {_absent(mark)}")
        out.append(Finding(notebook=number, sentence=sentence, value_text=text,
                           value=value, unit=h.unit if value is not None else "", claim=h.claim, mark=mark,
                           why=why, headline=h))
    return out


# ----------------------------------------------------------------------------- the machine and the figures


def machine(runs: Iterable[NotebookRun] = ()) -> dict[str, Any]:
    """The machine the report was rendered on (CPU model, features, cores, thread settings from
    :func:`mclab.hw.cpu_info`), with the thread counts the notebooks recorded and the CPU features notebook 00
    recorded when they differ from this machine's (a report rendered elsewhere)."""
    cpu = hw.cpu_info()
    features = [k for k, v in cpu.features.items() if v]
    threads: set[int] = set()
    recorded_features = None
    for r in runs:
        t = r.metrics.get("threads")
        if isinstance(t, int) and not isinstance(t, bool):
            threads.add(t)
        if r.number == "00" and isinstance(r.metrics.get("cpu_features"), list):
            recorded_features = r.metrics["cpu_features"]
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ}
    return {"cpu": cpu.model, "arch": cpu.arch, "features": features, "usable_cores": cpu.usable_cores,
            "logical_cores": cpu.logical_cores, "thread_env": env, "timed_threads": sorted(threads),
            "recorded_features": recorded_features if recorded_features is not None
            and set(recorded_features) != set(features) else None}


def key_figure(notebook_path: str | Path, section: str | None = None) -> bytes | None:
    """The PNG bytes of an executed notebook's key figure: the first figure drawn under the first markdown
    heading that contains ``section`` (case-insensitive), else its last figure; None when it drew none."""
    try:
        nb = json.loads(Path(notebook_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    heading, figures = "", []  # (heading above it, base64 PNG)
    for c in nb.get("cells", []):
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        if c.get("cell_type") == "markdown":
            heading = next((ln for ln in reversed(src.splitlines()) if ln.startswith("#")), heading)
        figures += [(heading, o["data"]["image/png"]) for o in c.get("outputs", [])
                    if isinstance(o.get("data"), dict) and "image/png" in o["data"]]
    if not figures:
        return None
    want = (section or "").casefold()
    b64 = next((b for h, b in figures if want and want in h.casefold()), figures[-1][1])
    try:
        return base64.b64decode("".join(b64) if isinstance(b64, list) else b64)
    except (binascii.Error, ValueError):
        return None


def _thumbnail(png: bytes, width: int = 360) -> bytes:
    """``png`` shrunk to ``width`` pixels wide (PNG bytes); returned as is when Pillow cannot read it."""
    try:
        from PIL import Image
    except ImportError:
        return png
    try:
        im = Image.open(io.BytesIO(png))
        if im.width > width:
            im = im.resize((width, max(1, round(im.height * width / im.width))), Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        return buf.getvalue()
    except OSError:
        return png




# ----------------------------------------------------------------------------- the index page


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222;line-height:1.35}
header{border-bottom:2px solid #444;margin-bottom:1em} header dl{display:grid;grid-template-columns:max-content 1fr;
gap:.15em 1em;margin:.5em 0} dt{font-weight:600} .tally span{margin-right:1.2em}
section.nb{display:grid;grid-template-columns:1fr 380px;gap:0 1.2em;border-bottom:1px solid #ccc;padding:.8em 0}
section.nb h2{grid-column:1/3;margin:.2em 0;font-size:1.15em} section.nb.bad{background:#fde}
.question{grid-column:1/3;margin:.1em 0 .5em;font-style:italic;color:#444}
table.findings{border-collapse:collapse;width:100%;font-size:.92em}
table.findings td,table.findings th{border-bottom:1px solid #e4e4e4;padding:.25em .4em;vertical-align:top;
text-align:left}
.value{font-weight:700;font-variant-numeric:tabular-nums}
.mark{white-space:nowrap;font-weight:600;border-radius:3px;padding:0 .3em}
span.mark-met{color:#135f13;background:#e3f5e3} span.mark-not-met{color:#8a1212;background:#fbe3e3}
span.mark-not-measurable-here{color:#555;background:#eee} span.mark-not-recorded{color:#7a5a00;background:#fff3cc}
tr.mark-met td:first-child{border-left:4px solid #5fb35f} tr.mark-not-met td:first-child{border-left:4px solid #d05050}
tr.mark-not-measurable-here td:first-child{border-left:4px solid #bbb}
tr.mark-not-recorded td:first-child{border-left:4px solid #e0b000}
.why{display:block;color:#666;font-size:.85em}
figure{margin:0} img.thumb{width:360px;border:1px solid #ccc} figcaption{font-size:.8em;color:#666}
details{grid-column:1/3;margin-top:.4em;font-size:.85em} details table{border-collapse:collapse}
details td{border-bottom:1px solid #eee;padding:.1em .4em;vertical-align:top} .status{font-size:.85em;color:#444}
"""


def _raw(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    text = json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v)
    return text if len(text) < 200 else text[:197] + "..."


def _attr(v: Any) -> str:
    return html.escape(json.dumps(v, ensure_ascii=False), quote=True)


def _finding_row(f: Finding) -> str:
    h = f.headline
    data = [f'data-path="{_attr(list(h.path))}"', f'data-scale="{_attr(h.scale)}"']
    if h.agg:
        data.append(f'data-agg="{_attr(h.agg)}"')
    if h.divide_by:
        data.append(f'data-divide-by="{_attr(list(h.divide_by))}"')
    before, _, after = (html.escape(part) for part in h.text.partition("{value}"))
    if f.value is None:
        sentence = f'{before}…{after} — <span class="value missing" {" ".join(data)}>{_absent(f.mark)}</span>'
    else:
        unit = f"{_unit_sep(h.unit)}{html.escape(h.unit)}" if h.unit else ""
        sentence = f'{before}<span class="value" {" ".join(data)}>{html.escape(f.value_text)}</span>{unit}{after}'
    why = f'<span class="why">{html.escape(f.why)}</span>' if f.why else ""
    css = "mark-" + f.mark.replace(" ", "-")
    return (f'<tr class="finding {css}"><td class="sentence">{sentence}</td><td class="claim">{html.escape(f.claim)}'
            f'</td><td><span class="mark {css}">{f.mark}</span>{why}</td></tr>')


def _section(run: NotebookRun, chapter: Chapter | None, page: str | None, thumb: str | None) -> str:
    title = f"{run.number} · {chapter.title}" if chapter else run.name
    name = html.escape(run.name)
    link = f'<a class="page" href="{html.escape(page)}">{name}</a>' if page else name
    rows = findings(run.number, run.metrics)
    if rows:
        table = ("<table class='findings'><tr><th>finding (measured here)</th><th>source material's claim</th>"
                 f"<th>mark</th></tr>{''.join(_finding_row(f) for f in rows)}</table>")
    else:
        table = "<p class='findings-none'>No headline findings are defined for this notebook yet.</p>"
    status = "ok" if run.ok else f"{run.status}: {html.escape(run.error or '')}"
    if thumb and page:
        fig = (f'<figure><a href="{html.escape(page)}"><img class="thumb" src="{html.escape(thumb)}" '
               f'alt="key figure of {name}"></a><figcaption>key figure — click for the executed notebook'
               "</figcaption></figure>")
    else:
        fig = "<figure><figcaption>this notebook drew no figure</figcaption></figure>"
    raw = "".join(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(_raw(v))}</td></tr>"
                  for k, v in sorted(run.metrics.items()))
    return (f'<section class="nb {"ok" if run.ok else "bad"}" id="nb-{html.escape(run.number)}" '
            f'data-notebook="{html.escape(run.number)}">'
            f"<h2>{html.escape(title)} — {link}</h2>"
            f'<p class="question">{html.escape(chapter.question if chapter else "")}</p>'
            f'<div>{table}<p class="status">status: {status} · {run.seconds:.1f} s</p></div>{fig}'
            f"<details><summary>all {len(run.metrics)} recorded metrics</summary><table>{raw}</table></details>"
            "</section>")


def render_index(runs: Sequence[NotebookRun], out_dir: str | Path, *, fast: bool,
                 pages: Mapping[str, str] | None = None, chapters: Iterable[Chapter] = ()) -> Path:
    """Write ``index.html`` (and ``thumbs/*.png``) into ``out_dir`` for the executed ``runs``; ``pages`` maps a
    notebook number to its HTML page (relative to ``out_dir``). Returns the index path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pages = dict(pages or {})
    by_number = {c.number: c for c in chapters}
    sections, tally = [], dict.fromkeys(MARKS, 0)
    for r in runs:
        thumb = None
        png = key_figure(r.output, KEY_FIGURE.get(r.number)) if r.output else None
        if png is not None:
            (out / "thumbs").mkdir(exist_ok=True)
            thumb = f"thumbs/{Path(r.name).stem}.png"
            (out / thumb).write_bytes(_thumbnail(png))
        for f in findings(r.number, r.metrics):
            tally[f.mark] += 1
        sections.append(_section(r, by_number.get(r.number), pages.get(r.number), thumb))
    m = machine(runs)
    env = ", ".join(f"{k}={v}" for k, v in m["thread_env"].items()) or "no OMP/MKL thread variables set"
    timed = (", ".join(map(str, m["timed_threads"])) + " (as the notebooks recorded)") if m["timed_threads"] \
        else "not recorded"
    differ = ("<dt>recorded by 00</dt><dd>notebook 00 ran on a CPU with "
              f"{html.escape(', '.join(m['recorded_features']))} — not this one</dd>"
              ) if m["recorded_features"] is not None else ""
    mode = "FAST (CI: shrunken runs, wider intervals)" if fast else "full (the learner's defaults)"
    failed = sum(not r.ok for r in runs)
    index = out / "index.html"
    index.write_text(f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mclab report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head><body>
<header><h1>mclab — the kit's results at a glance</h1>
<dl class="machine"><dt>CPU</dt><dd>{html.escape(m["cpu"])} ({html.escape(m["arch"])})</dd>
<dt>features</dt><dd>{html.escape(", ".join(m["features"]) or "none of the listed SIMD features")}</dd>
<dt>cores</dt><dd>{m["usable_cores"]} usable of {m["logical_cores"]}</dd>
<dt>threads</dt><dd>timed runs used {html.escape(timed)}; {html.escape(env)}</dd>{differ}
<dt>mode</dt><dd>{mode}</dd><dt>date</dt><dd>{time.strftime("%Y-%m-%d %H:%M %Z")}</dd>
<dt>notebooks</dt><dd>{len(runs)} run, {failed} failed</dd></dl>
<p class="tally">Headline findings beside the source material's claims:
{" · ".join(f'{n} <span class="mark mark-{k.replace(" ", "-")}">{k}</span>' for k, n in tally.items())}</p>
<p>Each number comes from the metrics the notebook recorded (<code>mclab.record</code>); the claims come from the
source material (files 000–004). Widgets need a running kernel; each page shows the figures for the default
values.</p></header>
{"".join(sections)}
</body></html>""", encoding="utf-8")
    return index


def render_report(summary: RunSummary, out_dir: str | os.PathLike[str]) -> Path:
    """Render each executed notebook of ``summary`` (a :func:`mclab.lab.notebooks.run_all` result) to HTML beside an
    ``index.html`` (headline findings beside the source's claims, key figures, the machine: :func:`render_index`);
    returns the index path."""
    from nbconvert import HTMLExporter

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    pages = {}
    for r in summary.runs:
        if Path(r.output).exists():
            body, _ = exporter.from_filename(r.output)
            pages[r.number] = f"{Path(r.name).stem}.html"
            (out / pages[r.number]).write_text(body, encoding="utf-8")
    return render_index(summary.runs, out, fast=summary.fast, pages=pages, chapters=CURRICULUM)

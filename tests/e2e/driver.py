"""What a learner does in JupyterLab, done through the browser: open a notebook, run all cells, wait for the
kernel, read the cells' errors, drag each slider and see whether what it controls changed.

The notebook model is read through ``window.jupyterapp`` (the server runs with
``LabApp.expose_app_in_browser``); sliders are moved with the mouse, buttons pressed with clicks.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from playwright.sync_api import Locator, Page

# code that makes a notebook a widget notebook: ipywidgets itself or the kit's front ends
WIDGET_CODE = re.compile(r"\bipywidgets\b|\bmclab\.lab\.widgets\b|from mclab\.lab import [^\n]*\bwidgets\b")

_NOTEBOOK = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
_KERNEL = f"({_NOTEBOOK}.sessionContext.session?.kernel)"

# a cell's output minus the controls themselves (a dead slider still changes its own readout): the text of each
# leaf output (prints, tables, notes: the controls are widget views, never leaves) and every image and canvas
_SNAPSHOT_JS = """cell => {
  const out = cell.querySelector('.jp-Cell-outputArea');
  if (!out) return JSON.stringify({text: [], images: []});
  const leaves = [...out.querySelectorAll('.jp-OutputArea-output')]
    .filter(e => !e.querySelector('.jp-OutputArea-output'));
  const text = leaves.map(e => e.innerText.trim()).filter(t => t);
  const imgs = [...out.querySelectorAll('img')].map(i => i.src);
  const canvases = [...out.querySelectorAll('canvas')]
    .map(k => { try { return k.toDataURL(); } catch (e) { return ''; } });
  return JSON.stringify({text: text, images: imgs.concat(canvases)});
}"""


@dataclass
class SliderMove:
    """One slider moved in one notebook, and what its output did."""

    notebook: str
    cell: int            # 1-based position among the notebook's cells
    widget: str          # the slider's description
    before: str          # the slider's readout before and after the drag
    after: str
    changed: str         # what changed in the output ("" when nothing did)
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def open_notebook(page: Page, url: str, timeout_s: float = 120) -> None:
    """Open ``url`` (a /lab/tree/... page) and wait until its kernel is connected."""
    page.goto(url)
    page.wait_for_function(f"{_NOTEBOOK} && {_NOTEBOOK}.content && {_KERNEL} && {_KERNEL}.status === 'idle'",
                           timeout=timeout_s * 1000, polling=250)


def run_all(page: Page, name: str, timeout_s: float = 300) -> None:
    """Run > Run All Cells; returns when the kernel is idle and every code cell ran (or one failed)."""
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    done = f"""() => {{
      const k = {_KERNEL};
      const cells = {_NOTEBOOK}.content.model.toJSON().cells.filter(c => c.cell_type === 'code');
      const failed = cells.some(c => (c.outputs || []).some(o => o.output_type === 'error'));
      return k && k.status === 'idle' && (failed || cells.every(c => c.execution_count !== null));
    }}"""
    try:
        page.wait_for_function(done, timeout=timeout_s * 1000, polling=500)
    except Exception as e:  # playwright's TimeoutError: say which notebook and where it stopped
        where = page.evaluate(f"""() => {_NOTEBOOK}.content.model.toJSON().cells
            .map((c, i) => [i + 1, c.cell_type, c.execution_count]).filter(c => c[1] === 'code' && c[2] === null)
            .map(c => c[0])""")
        raise AssertionError(f"{name}: Run All did not finish within {timeout_s:.0f} s; "
                             f"cells not yet run: {where[:10]}") from e


def cell_errors(page: Page) -> list[str]:
    """'cell N: Ename: value' for every error output in the open notebook."""
    return page.evaluate(f"""() => {_NOTEBOOK}.content.model.toJSON().cells.flatMap((c, i) =>
        (c.outputs || []).filter(o => o.output_type === 'error')
          .map(o => `cell ${{i + 1}}: ${{o.ename}}: ${{o.evalue}}`))""")


def sliders(page: Page) -> Locator:
    """The controls a learner moves: sliders, and dropdowns (a choice is moved by picking another option)."""
    return page.locator(".jp-Notebook .jp-Cell .widget-slider, .jp-Notebook .jp-Cell .widget-dropdown")


def _snapshot(cell: Locator) -> str:
    return cell.evaluate(_SNAPSHOT_JS)


def _describe_change(before: str, after: str) -> str:
    import json

    b, a = json.loads(before), json.loads(after)
    parts = []
    if b["images"] != a["images"]:
        digest = lambda imgs: ",".join(hashlib.sha1(i.encode()).hexdigest()[:8] for i in imgs) or "none"  # noqa: E731
        parts.append(f"figure redrawn ({len(b['images'])} -> {len(a['images'])} images, {digest(b['images'])} -> "
                     f"{digest(a['images'])})")
    if b["text"] != a["text"]:
        added = [" ".join(t.split())[:160] for t in a["text"] if t not in b["text"]][:2]
        parts.append("readout now: " + " | ".join(added) if added else "text removed")
    return "; ".join(parts)


def bring_into_view(page: Page, slider: Locator) -> None:
    """Scroll the slider to the middle of the window. JupyterLab may scroll the notebook itself (to the active
    cell) after a run, and it skips rendering cells out of view, so text read before this may be empty."""
    handle, height = slider.locator(".noUi-handle, select").first, page.viewport_size["height"]
    for _ in range(20):
        slider.evaluate("e => e.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(200)
        hb = handle.bounding_box()
        if hb and 0 <= hb["y"] < height - hb["height"]:
            return
    raise AssertionError(f"slider stays out of view (handle at {hb})")


def move_slider(page: Page, slider: Locator) -> tuple[str, str]:
    """Drag the slider's handle a third of the track away from where it is, or pick a dropdown's next option
    (what a learner does); returns the readout before and after."""
    bring_into_view(page, slider)
    if slider.locator("select").count():  # a dropdown: pick the next option
        select = slider.locator("select")
        options, shown = select.locator("option").all_inner_texts(), select.input_value()
        values = select.evaluate("s => [...s.options].map(o => o.value)")
        select.select_option(values[(values.index(shown) + 1) % len(values)])
        return options[values.index(shown)], options[values.index(select.input_value())]
    handle, track = slider.locator(".noUi-handle"), slider.locator(".noUi-target")
    before = handle.get_attribute("aria-valuenow")
    shown = slider.locator(".widget-readout").inner_text().strip()  # as the learner reads it
    hb, tb = handle.bounding_box(), track.bounding_box()
    x0, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
    frac = (x0 - tb["x"]) / tb["width"]
    x1 = tb["x"] + tb["width"] * (frac + 0.33 if frac < 0.5 else frac - 0.33)
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=8)
    page.mouse.up()
    try:
        page.wait_for_function("([h, v]) => h.getAttribute('aria-valuenow') !== v",
                               arg=[handle.element_handle(), before], timeout=10_000)
    except Exception as e:  # playwright's TimeoutError
        raise AssertionError(f"slider {shown} did not move when dragged from x={x0:.0f} to x={x1:.0f} "
                             f"(track {tb['x']:.0f}..{tb['x'] + tb['width']:.0f}, y={y:.0f})") from e
    return shown, slider.locator(".widget-readout").inner_text().strip()


def exercise_sliders(page: Page, name: str, shots: Path | None = None, timeout_s: float = 60) -> list[SliderMove]:
    """Move every slider in the open notebook, press the button beside it when there is one (a manual
    front end recomputes only then), and check that the cell's output changed. Raises AssertionError
    naming the notebook, the cell and the widget when a slider changes nothing, or when there is no slider."""
    n = sliders(page).count()
    assert n, f"{name}: uses widgets but shows no slider or dropdown after Run All (did a widget cell fail to display?)"
    moves = []
    for i in range(n):
        slider = sliders(page).nth(i)
        cell = slider.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' jp-Cell ')][1]")
        index = cell.evaluate("c => [...c.parentElement.children].filter(e => e.classList.contains('jp-Cell'))"
                              ".indexOf(c) + 1")
        bring_into_view(page, slider)
        label = slider.locator(".widget-label").inner_text().strip() or f"slider {i + 1}"
        before_out = _snapshot(cell)
        t0 = time.monotonic()
        try:
            before, after = move_slider(page, slider)
        except AssertionError as e:
            if shots is not None:
                page.screenshot(path=str(shots / f"{Path(name).stem}.failed.png"))
            raise AssertionError(f"{name}: {label!r} (cell {index}): {e}") from None
        box = slider.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' widget-box ')][1]")
        for button in box.locator(".widget-button").all():  # only direct controls, not toggle buttons
            button.click()
        changed = ""
        while time.monotonic() - t0 < timeout_s:
            idle = page.evaluate(f"() => {_KERNEL}.status === 'idle'")
            now = _snapshot(cell)
            if idle and now != before_out:
                time.sleep(0.5)  # let a redraw that clears first finish
                changed = _describe_change(before_out, _snapshot(cell))
                break
            time.sleep(0.25)
        moves.append(SliderMove(notebook=name, cell=index, widget=label, before=before, after=after, changed=changed,
                                seconds=round(time.monotonic() - t0, 2)))
        assert changed, (f"{name}: slider {label!r} (cell {index}) moved {before} -> {after}, but nothing it controls "
                         f"changed within {timeout_s:.0f} s (its callback changes nothing)")
        if shots is not None:
            cell.screenshot(path=str(shots / f"{Path(name).stem}.cell{index}.{i + 1}.png"))
    errors = cell_errors(page)
    assert not errors, f"{name}: moving the sliders raised errors: {errors}"
    if shots is not None:
        page.screenshot(path=str(shots / f"{Path(name).stem}.png"))
    return moves

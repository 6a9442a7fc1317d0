"""Every widget notebook in a real browser: Run All in JupyterLab, no cell errors, each slider dragged and
what it controls seen to change; a screenshot of each notebook afterwards in build/e2e/. A generated
notebook with a dead slider shows that the check can fail."""
from __future__ import annotations

import json

import nbformat
import pytest

from .conftest import widget_notebooks
from .driver import cell_errors, exercise_sliders, open_notebook, run_all

pytestmark = pytest.mark.e2e

WIDGET_NOTEBOOKS = widget_notebooks()
MOVES: dict[str, list[dict]] = {}


def test_widget_notebooks_are_found():
    # notebooks 02, 04, 13, 13b and 14 have sliders today; notebooks added later are found by their code
    names = [p.name.split("_", 1)[0] for p in WIDGET_NOTEBOOKS]
    assert {"02", "04", "13", "13b", "14"} <= set(names), names


@pytest.mark.parametrize("path", WIDGET_NOTEBOOKS, ids=lambda p: p.name)
def test_sliders_redraw_in_jupyterlab(path, lab, page, artefacts):
    open_notebook(page, lab.page(path.name))
    run_all(page, path.name)
    errors = cell_errors(page)
    assert not errors, f"{path.name}: cells failed under Run All: {errors}"
    moves = exercise_sliders(page, path.name, shots=artefacts)
    MOVES[path.name] = [m.as_dict() for m in moves]
    (artefacts / "widgets.json").write_text(json.dumps(MOVES, indent=2))
    print("\n".join(f"{m.notebook} cell {m.cell} {m.widget!r}: {m.before} -> {m.after}: {m.changed}" for m in moves))


def _dead_slider_notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import ipywidgets as w\n"
        "from IPython.display import display\n"
        "out = w.Output()\n"
        "with out:\n"
        "    print('knob at 5')\n"
        "knob = w.IntSlider(value=5, min=0, max=10, description='dead knob', continuous_update=False)\n"
        "knob.observe(lambda change: None, names='value')  # the bug: the callback redraws nothing\n"
        "display(w.VBox([knob, out]))")]
    nbformat.write(nb, path)


def test_a_slider_that_changes_nothing_is_caught(lab, page):
    gen = lab.root / "_generated"
    gen.mkdir(exist_ok=True)
    _dead_slider_notebook(gen / "99_dead_slider.ipynb")
    open_notebook(page, lab.page("_generated/99_dead_slider.ipynb"))
    run_all(page, "99_dead_slider.ipynb")
    with pytest.raises(AssertionError) as caught:
        exercise_sliders(page, "99_dead_slider.ipynb", timeout_s=8)
    message = str(caught.value)
    assert "99_dead_slider.ipynb" in message and "'dead knob'" in message and "changes nothing" in message, message
    assert "moved 5 -> " in message  # the slider did move: the output is what stayed put

"""Metrics a notebook records for its tests (every notebook's last cell).

``record(latency_p50_ms=3.2, ...)`` appends the metrics to the JSON file named by the
environment variable ``MCLAB_RECORD_FILE``, which the notebook runner
(``mclab notebooks``) sets for each notebook it executes. Run interactively, with no such
variable, it only displays the metrics as a table. Introduced in notebook 00.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["ENV_VAR", "record", "load", "jsonable"]

ENV_VAR = "MCLAB_RECORD_FILE"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def jsonable(value: Any, name: str = "value") -> Any:
    """Return ``value`` as plain JSON types (numpy scalars and arrays included).

    Raises ``ValueError`` for NaN or infinite numbers and ``TypeError`` for anything that is
    not a number, string, bool, None, list/tuple or dict of those.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(f"metric {name!r} is {f}; record only finite numbers")
        return f
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple, dict)):  # numpy
        return jsonable(value.tolist(), name)
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{name}.{k}") for k, v in value.items()}
    raise TypeError(
        f"metric {name!r} has type {type(value).__name__}; allowed: numbers, str, bool, "
        "None, and lists or dicts of those"
    )


def record(**metrics: Any) -> dict[str, Any]:
    """Record a notebook's key metrics; returns them as a plain dict.

    Names are lower_snake_case and carry their unit (``latency_p50_ms``, ``size_bytes``).
    Repeated calls in one notebook merge; a later value for the same name replaces the earlier.
    """
    if not metrics:
        raise ValueError("record() needs at least one metric, e.g. record(accuracy=0.97)")
    clean: dict[str, Any] = {}
    for name, value in metrics.items():
        if not _NAME.match(name):
            raise ValueError(f"metric name {name!r} must be lower_snake_case (a-z, 0-9, _)")
        clean[name] = jsonable(value, name)

    target = os.environ.get(ENV_VAR)
    if target:
        path = Path(target)
        merged = load(path) if path.exists() else {}
        merged.update(clean)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2, sort_keys=True))
    else:
        _display(clean)
    return clean


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read metrics written by :func:`record`; returns ``{}`` for an empty file."""
    text = Path(path).read_text()
    return json.loads(text) if text.strip() else {}


def _display(metrics: dict[str, Any]) -> None:
    rows = "".join(f"<tr><td><code>{k}</code></td><td>{v}</td></tr>" for k, v in metrics.items())
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        get_ipython = None
    if get_ipython is None or get_ipython() is None:  # plain Python: print instead
        for k, v in metrics.items():
            print(f"{k:32s} {v}")
        return
    display(HTML(f"<b>Recorded metrics</b> (kept only when run by <code>mclab notebooks</code>)"
                 f"<table>{rows}</table>"))

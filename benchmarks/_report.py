"""What every benchmark script ends with: the JSON result on disk and one met/MISSED line per target."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(out: Path, result: dict[str, Any], targets: dict[str, bool]) -> None:
    """Write ``result`` (which holds ``targets`` and ``wall_s``) to ``out`` as JSON and print the targets."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    width = max(map(len, targets)) + 2
    for name, met in targets.items():
        print(f"{name:{width}s} {'met' if met else 'MISSED'}")
    print(f"written to {out} ({result['wall_s']:.0f} s)")

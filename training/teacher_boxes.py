"""An offline face finder's boxes (CenterFace, run with ``../shared/anchors/centerface_boxes.py``):
the one reader of the files that ``prepare crops``, ``verifier`` and ``evaluate --teacher-boxes`` take.

    boxes = read_teacher_boxes(path)        # {photo stem: [[x0, y0, x1, y1, score], ...]}
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from facecam.errors import FacecamError

SHAPE = "lists of [x0, y0, x1, y1, score] (five finite numbers each)"


def _is_number(value) -> bool:
    # JSON's true/false load as bool, a kind of int; NaN and Infinity load as floats
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_teacher_boxes(path: Path) -> dict[str, list[list[float]]]:
    """The boxes by photo stem; anything else is a one-line error naming where, before any work."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FacecamError(f"cannot read teacher boxes {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise FacecamError(f"{path}: teacher boxes must map photo names to {SHAPE}")
    for name, entries in raw.items():
        if not isinstance(entries, list) or not all(
            isinstance(e, list) and len(e) == 5 and all(_is_number(v) for v in e) for e in entries
        ):
            raise FacecamError(f"{path}: {name!r} must be a list of [x0, y0, x1, y1, score] (five finite numbers each)")
    return {name: [[float(v) for v in e] for e in entries] for name, entries in raw.items()}

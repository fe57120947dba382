"""Where a model's face IoU goes on a labelled split: the pixels it misses and the pixels it
paints that are not the labelled face, split by where they lie.

    python scripts/face_error_split.py DATA SPLIT [MODEL] [--show OUT.png]

DATA is a facecam-layout set with face = 1 and hair = 2 (``../shared/data/lfw-parts``); each
photo of SPLIT takes the runtime's path (``facecam --images --mode mask``: the photo's own
finder, crops and mirror-averaged first looks), face = the mask at or above one half. Prints JSON:
the mean IoU, and each kind of error as a share of the summed union of face and painted pixels:

- ``missed``: labelled face left unpainted;
- ``painted_hair``: painted on labelled hair;
- ``painted_near``: painted on labelled background within NEAR px of the labelled face (a neck,
  an ear, a rim);
- ``painted_far``: painted on labelled background further away: in a portrait set that labels
  one person, mostly the other people's faces (at the photo's edge, behind the subject), which
  the runtime is asked to find, and otherwise hands and false faces.

``--show OUT.png``: the 16 photos with the most ``painted_far``, face painted in green, far
paint in red, the tracked faces' boxes in cyan: look at what the figure counts before reading it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facecam.api import FaceStream
from facecam.cli_args import OneLineErrorParser
from facecam.errors import FacecamError, cli_entry
from facecam.training.dataset import read_pair

FACE, HAIR, BACKGROUND = 1, 2, 0
#: background within this many pixels of the labelled face counts as near it (LFW: 250 px photos)
NEAR = 15
KINDS = ("missed", "painted_hair", "painted_near", "painted_far")
SHOWN = 16


@dataclass
class ErrorSplit:
    """Pixel counts summed over photos, and each photo's IoU."""

    union: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    ious: list[float] = field(default_factory=list)

    def report(self) -> dict:
        shares = {kind: round(count / max(self.union, 1), 4) for kind, count in self.counts.items()}
        return {"photos": len(self.ious), "mean_iou": round(float(np.mean(self.ious)), 4), **shares}


def photo_errors(painted: np.ndarray, labels: np.ndarray) -> tuple[dict[str, np.ndarray], int, float]:
    """Each kind of error of one photo as an ``(H, W) bool`` map, the union's pixels and the IoU;
    ``painted`` ``(H, W) bool``, ``labels`` ``(H, W) uint8`` (FACE, HAIR, BACKGROUND; others ignored)."""
    face = labels == FACE
    side = 2 * NEAR + 1
    near = cv2.dilate(face.astype(np.uint8), np.ones((side, side), np.uint8)) > 0
    background = painted & (labels == BACKGROUND)
    errors = {
        "missed": face & ~painted,
        "painted_hair": painted & (labels == HAIR),
        "painted_near": background & near,
        "painted_far": background & ~near,
    }
    union = int((face | painted).sum())
    iou = float((face & painted).sum()) / union if union else 1.0
    return errors, union, iou


def overlay(image: np.ndarray, painted: np.ndarray, far: np.ndarray, faces) -> np.ndarray:
    """``image`` (BGR) with the paint green, the far paint red and the faces' boxes cyan."""
    view = image.copy()
    for where, colour in ((painted & ~far, (0, 255, 0)), (far, (0, 0, 255))):
        view[where] = (0.5 * view[where] + 0.5 * np.array(colour)).astype(np.uint8)
    for box in faces:
        cv2.rectangle(view, (int(box.x0), int(box.y0)), (int(box.x1), int(box.y1)), (255, 255, 0), 1)
    return view


def parser() -> OneLineErrorParser:
    p = OneLineErrorParser(prog="face_error_split.py", description="Where a model's face IoU goes on a split.")
    p.add_argument("data", type=Path, help="a facecam-layout set (SPLIT.txt, images/, labels/)")
    p.add_argument("split")
    p.add_argument("model", nargs="?", help="an .onnx or a name in weights/ (default: the default model)")
    p.add_argument("--show", type=Path, metavar="OUT.png", help="the photos with the most far paint")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    data, split, show = args.data, args.split, args.show
    listing = data / f"{split}.txt"
    if not listing.is_file():
        raise FacecamError(f"{listing} does not exist (DATA must hold SPLIT.txt, images/ and labels/)")
    names = listing.read_text().split()
    if not names:
        raise FacecamError(f"{listing} names no photo")
    totals, worst = ErrorSplit(), []
    with FaceStream(args.model, "mask") as stream:
        for name in names:
            rgb, labels = read_pair(data, name)
            image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            result = stream.process_photo(image)
            painted = result.mask >= 0.5
            errors, union, iou = photo_errors(painted, labels)
            totals.union += union
            totals.ious.append(iou)
            for kind, where in errors.items():
                totals.counts[kind] += int(where.sum())
            if show is not None:
                far = errors["painted_far"]
                shown = (int(far.sum()), name, overlay(image, painted, far, result.faces))
                worst = sorted([*worst, shown], key=lambda entry: entry[0])[-SHOWN:]
    print(json.dumps(totals.report()))
    if show is not None and worst:
        tiles = [cv2.resize(view, (250, 250)) for _, _, view in reversed(worst)]
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 8)
        picture = np.vstack([np.hstack(tiles[i : i + 8]) for i in range(0, len(tiles), 8)])
        if not cv2.imwrite(str(show), picture):
            raise FacecamError(f"could not write {show} (its folder must exist; .png or .jpg)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How well faces tilted in the picture's plane are painted: every photo of a labelled split
turned by each angle, through the runtime's photo path, scored against its label turned alike.

    python scripts/tilted_faces.py DATA SPLIT [--angles 0,30,45,60,90,180] [--photos N] [--model M] [--stream N]

DATA is a facecam-layout set with face = 1 (``../shared/data/lfw-parts``). A head tilted to a
shoulder, a child lying on the floor, someone asleep on a beach: the model was trained on
upright faces turned up to 25 degrees (training/augment.py), so this says where that ends.
Prints one JSON line per angle: the mean face IoU and the share of photos under IoU 0.5 (the
face mostly missed), counted inside the turned photo's own pixels (the corners the turn brings
in are filled by reflection and not scored). ``--stream N``: each turned photo is a clip of N
frames, the picture moving one pixel right a frame (a hand-held camera), through a video
stream's path (first look, then followed), and the last frame is scored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from facecam.api import FaceStream
from facecam.cli_args import OneLineErrorParser
from facecam.errors import FacecamError, cli_entry
from facecam.training.dataset import read_pair

FACE = 1
MOSTLY_MISSED = 0.5


def turned(image: np.ndarray, labels: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``image`` (BGR) and its face label turned ``angle`` degrees counter-clockwise about the
    centre, and ``(H, W) bool`` where the turned photo's own pixels are."""
    height, width = labels.shape
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)  # pixel centres
    picture = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    face = cv2.warpAffine((labels == FACE).astype(np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST) > 0
    inside = cv2.warpAffine(np.ones_like(labels), matrix, (width, height), flags=cv2.INTER_NEAREST) > 0
    return picture, face, inside


def face_iou(painted: np.ndarray, face: np.ndarray) -> float:
    union = int((painted | face).sum())
    return float((painted & face).sum()) / union if union else 1.0


def painted_mask(stream: FaceStream, picture: np.ndarray, frames: int) -> np.ndarray:
    """The mask of ``picture`` as a photo (``frames`` 0), or of the last of ``frames`` frames of a
    clip of it moving one pixel right a frame (shifted back, so that it lies on the label)."""
    if frames <= 0:
        return stream.process_photo(picture).mask
    stream.reset()
    for shift in range(frames):
        moved = np.roll(picture, shift, axis=1)
        mask = stream.process(moved).mask
    return np.roll(mask, -(frames - 1), axis=1)


def parser() -> OneLineErrorParser:
    p = OneLineErrorParser(prog="tilted_faces.py", description="Face IoU of photos turned in their plane.")
    p.add_argument("data", type=Path, help="a facecam-layout set (SPLIT.txt, images/, labels/)")
    p.add_argument("split")
    p.add_argument("--angles", default="0,30,45,60,90,180", help="degrees, comma-separated")
    p.add_argument("--photos", type=int, default=0, help="the first N photos of the split (0: all)")
    p.add_argument("--model", help="an .onnx or a name in weights/ (default: the default model)")
    p.add_argument("--stream", type=int, default=0, help="score a clip of N frames of each photo (0: the photo path)")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        angles = [float(a) for a in args.angles.split(",")]
    except ValueError:
        raise FacecamError(f"--angles must be numbers separated by commas, got {args.angles!r}") from None
    listing = args.data / f"{args.split}.txt"
    if not listing.is_file():
        raise FacecamError(f"{listing} does not exist (DATA must hold SPLIT.txt, images/ and labels/)")
    names = listing.read_text().split()[: args.photos or None]
    if not names:
        raise FacecamError(f"{listing} names no photo")
    with FaceStream(args.model, "mask") as stream:
        photos = [read_pair(args.data, name) for name in names]
        for angle in angles:
            ious = []
            for rgb, labels in photos:
                picture, face, inside = turned(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), labels, angle)
                painted = (painted_mask(stream, picture, args.stream) >= 0.5) & inside
                ious.append(face_iou(painted, face))
            scores = np.array(ious)
            report = {"angle": angle, "photos": len(ious), "mean_iou": round(float(scores.mean()), 4)}
            report["mostly_missed"] = round(float((scores < MOSTLY_MISSED).mean()), 3)
            print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

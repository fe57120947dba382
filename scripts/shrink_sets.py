"""Shrink training sets in the facecam layout for a trip to a GPU machine with a small upload limit.

usage: python scripts/shrink_sets.py SRC DST MAX_SIDE WEBP_QUALITY SPLIT [SPLIT ...]

Each listed photo is shrunk (area) so that its long side is at most MAX_SIDE and written as WebP;
its labels are shrunk nearest-neighbour and written as PNG; the split lists are copied. Training
resizes every photo to its input size first (``A.LongestMaxSize``), so at MAX_SIDE = the training
size this loses only what the WebP encoding loses. The default model of 2026-11-28 was trained on
sets shrunk with ``224 90`` (see weights/README.md).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2


def shrink(src: Path, dst: Path, splits: list[str], max_side: int, quality: int) -> int:
    """Write the shrunk copy of ``src``'s ``splits`` to ``dst``; returns the number of photos."""
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "labels").mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for split in splits:
        listed = src / f"{split}.txt"
        if not listed.is_file():
            sys.exit(f"shrink_sets: no split list {listed}")
        names |= {line.strip() for line in listed.read_text().splitlines() if line.strip()}
        shutil.copy(listed, dst / listed.name)
    for name in sorted(names):
        found = sorted((src / "images").glob(f"{name}.*"))
        image = cv2.imread(str(found[0])) if found else None
        label = cv2.imread(str(src / "labels" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        if image is None or label is None:
            sys.exit(f"shrink_sets: {name}: its photo or its label in {src} is missing or unreadable")
        scale = max_side / max(image.shape[:2])
        if scale < 1:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(dst / "images" / f"{name}.webp"), image, [cv2.IMWRITE_WEBP_QUALITY, quality])
        cv2.imwrite(str(dst / "labels" / f"{name}.png"), label, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return len(names)


if __name__ == "__main__":
    if len(sys.argv) < 6:
        sys.exit("usage: python scripts/shrink_sets.py SRC DST MAX_SIDE WEBP_QUALITY SPLIT [SPLIT ...]")
    count = shrink(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[5:], int(sys.argv[3]), int(sys.argv[4]))
    print(f"wrote {count} photos to {sys.argv[2]}")

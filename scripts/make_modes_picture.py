"""Draw docs/modes.jpg: one frame of the sample clip as input, overlay, blur and anonymize.

usage: python scripts/make_modes_picture.py [--clip samples/astronaut.mp4] [--frame 150] [--out docs/modes.jpg]

Each mode runs through the real ``facecam`` command (default model, CPU), so the picture
shows what a user gets, temporal smoothing included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

MODES = ("overlay", "blur", "anonymize")
TILE = (320, 240)


def read_frame(path: Path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        sys.exit(f"make_modes_picture: {path} has no frame {index}")
    return frame


def tile(frame: np.ndarray, caption: str) -> np.ndarray:
    small = cv2.resize(frame, TILE, interpolation=cv2.INTER_AREA)
    cv2.putText(small, caption, (8, TILE[1] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(small, caption, (8, TILE[1] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
    return small


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=Path("samples/astronaut.mp4"))
    parser.add_argument("--frame", type=int, default=150)
    parser.add_argument("--out", type=Path, default=Path("docs/modes.jpg"))
    args = parser.parse_args()
    tiles = [tile(read_frame(args.clip, args.frame), "input")]
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            out = Path(tmp) / f"{mode}.mp4"
            command = ["facecam", "--video", str(args.clip), "--out", str(out), "--mode", mode, "--provider", "cpu"]
            subprocess.run(command, check=True, capture_output=True)
            tiles.append(tile(read_frame(out, args.frame), mode))
    cv2.imwrite(str(args.out), np.hstack(tiles), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

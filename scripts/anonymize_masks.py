"""What ``--mode anonymize`` covers in a clip, as mask PNGs that ``face_recall.py`` scores: the
anonymised region (faces grown by the margin, lost faces held) of every 5th frame, white where
it covers, named by frame index as ``centerface_boxes.py`` names its boxes.

    python scripts/anonymize_masks.py CLIP.mp4 OUT_DIR [MODEL]
    python ../shared/anchors/face_recall.py boxes.json OUT_DIR

(``facecam --mode mask`` writes the mask of the other modes, which neither grows nor holds faces.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from facecam.api import FaceStream, video_frames
from facecam.errors import FacecamError, cli_entry

#: centerface_boxes.py's step
EVERY = 5


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3) or not Path(args[0]).is_file():
        raise FacecamError("usage: anonymize_masks.py CLIP.mp4 OUT_DIR [MODEL]")
    out = Path(args[1])
    if out.exists() and any(out.iterdir()):
        raise FacecamError(f"{out} is not empty: give a new folder (nothing is overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    options = {"model": args[2]} if len(args) == 3 else {}
    with FaceStream(mode="anonymize", **options) as stream:
        for index, frame in enumerate(video_frames(args[0])):
            found = stream.find(frame, index)  # every frame: the tracker follows the whole clip
            if index % EVERY == 0:
                covered = stream.alpha(frame, found) >= 0.5
                cv2.imwrite(str(out / f"{index}.png"), covered.astype(np.uint8) * 255)
    return 0


if __name__ == "__main__":
    sys.exit(main())

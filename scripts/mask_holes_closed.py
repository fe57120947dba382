"""The hole figure of a mask video before and after ``close_pockets`` (issue 12).

    facecam --video ../shared/data/videos/d3.mp4 --out d3_mask.mp4 --mode mask
    python scripts/mask_holes_closed.py d3_mask.mp4

Each frame of the mask video (white face on black) is read, its hole share taken with
``facecam.realtime.holes.hole_share`` (``../shared/anchors/mask_holes.py``'s definition: the
largest face blob's filled outline, the share of it the mask leaves out), then again after
``close_pockets`` on the decoded frame. Prints JSON: frames, mean hole share and the share of
frames whose holes exceed 1% of the face, before and after, and the mean pixels filled per frame.
The post-process runs here on the finished full-size mask, not at the model's inference size.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from facecam.realtime.holes import MAX_POCKET_SHARE, MIN_WALL_SHARE, close_pockets, hole_share


def figures(shares: list[float]) -> dict:
    a = np.asarray(shares)
    return {
        "frames": len(a),
        "mean_hole_share": round(float(a.mean()), 4) if len(a) else None,
        "frames_with_holes_over_1pct": round(float((a > 0.01).mean()), 3) if len(a) else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mask_video")
    p.add_argument("--max-share", type=float, default=MAX_POCKET_SHARE)
    p.add_argument("--min-wall", type=float, default=MIN_WALL_SHARE)
    a = p.parse_args()
    cap = cv2.VideoCapture(a.mask_video)
    before, after, filled = [], [], []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        share = hole_share(gray)
        if share is None:  # no face in the frame: no figure, as in the anchor
            continue
        closed = close_pockets(gray, a.max_share, a.min_wall)
        before.append(share)
        after.append(hole_share(closed))
        filled.append(int(((closed > 127) & (gray <= 127)).sum()))
    print(
        json.dumps(
            {
                "video": a.mask_video,
                "before": figures(before),
                "after": {**figures(after), "mean_pixels_filled": round(float(np.mean(filled)), 1) if filled else 0},
            }
        )
    )


if __name__ == "__main__":
    main()

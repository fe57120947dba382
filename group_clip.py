"""A multi-face test clip: a virtual 640x360 camera pans and zooms over a group photo.

facecam's speed and recall in crowds are measured on such a clip (deface, the usual tool for
anonymising video, is timed on the same one). The photos in ``../shared/data/groups`` may not
be shipped, so the project keeps this script, not the clip:

    python scripts/make_group_clip.py ../shared/data/groups/group-1.jpg group1.mp4

Camera path (centre and width of the crop in photo pixels, 16:9, eased between keys): 0-3 s
wide over most of the photo (faces at about half their size), 3-6 s zoom in on the left,
6-10 s pan to the right. 25 fps, H.264, no audio.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import av
import cv2
import numpy as np

from facecam.errors import FacecamError, cli_entry

WIDTH, HEIGHT, FPS, SECONDS = 640, 360, 25, 10
#: (time s, centre x, centre y, crop width) as shares of the photo's width and height
KEYS = ((0.0, 0.44, 0.34, 0.875), (3.0, 0.44, 0.34, 0.875), (6.0, 0.26, 0.33, 0.5), (10.0, 0.73, 0.34, 0.5))


def camera(t: float, keys=KEYS) -> tuple[float, float, float]:
    """``(centre x, centre y, crop width)`` (shares of the photo) at time ``t`` s, cosine-eased."""
    for (t0, *a), (t1, *b) in zip(keys, keys[1:], strict=False):
        if t <= t1:
            u = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
            u = 0.5 - 0.5 * math.cos(math.pi * u)
            return a[0] + u * (b[0] - a[0]), a[1] + u * (b[1] - a[1]), a[2] * (b[2] / a[2]) ** u
    return keys[-1][1:]


def view(photo: np.ndarray, cx: float, cy: float, width_share: float) -> np.ndarray:
    """The ``WIDTH x HEIGHT`` frame the camera sees (area-averaged when it shrinks the photo)."""
    h, w = photo.shape[:2]
    scale = WIDTH / (width_share * w)
    x, y = cx * w, cy * h
    if scale < 0.75:  # shrink first: bilinear sampling alone would alias
        f = scale / 0.75
        photo = cv2.resize(photo, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        x, y, scale = x * f, y * f, scale / f
    matrix = np.float32([[scale, 0, WIDTH / 2 - scale * x], [0, scale, HEIGHT / 2 - scale * y]])
    return cv2.warpAffine(photo, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def make_group_clip(photo_path: Path, out: Path) -> int:
    photo = cv2.imread(str(photo_path), cv2.IMREAD_COLOR)
    if photo is None:
        raise FacecamError(f"cannot read photo {photo_path}")
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "18"}
        for i in range(FPS * SECONDS):
            frame = av.VideoFrame.from_ndarray(view(photo, *camera(i / FPS)), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return FPS * SECONDS


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        raise FacecamError("usage: make_group_clip.py PHOTO OUT.mp4")
    frames = make_group_clip(Path(args[0]), Path(args[1]))
    print(f"wrote {args[1]}: {frames} frames, {WIDTH}x{HEIGHT} at {FPS} fps")
    return 0

"""The frame as a whole: a small grey thumbnail of it, and whether the scene was cut.

A cut (a new shot, a camera switched, the picture's size changed) makes every face track
meaningless: the finder drops them all and looks at the whole frame again.
"""

from __future__ import annotations

import cv2
import numpy as np

#: a mean grey change (0..255) this large between frames is a scene cut: every face is dropped
SCENE_CUT = 40.0


def scene_thumbnail(frame: np.ndarray) -> np.ndarray:
    """``(64, 64) uint8`` grey thumbnail for the scene-cut test. The frame is sampled every few
    pixels (128 or more samples a side) before the area average: averaging every pixel of a 720p
    frame took 3.3 ms a frame, and a cut changes the whole picture, not single pixels."""
    height, width = frame.shape[:2]
    small = cv2.resize(frame[:: max(1, height // 128), :: max(1, width // 128)], (64, 64), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)


def is_scene_cut(previous: np.ndarray | None, current: np.ndarray, threshold: float = SCENE_CUT) -> bool:
    """Two small grey thumbnails ``(h, w) uint8``: a mean change over ``threshold`` is a cut."""
    if previous is None or previous.shape != current.shape:
        return False
    return float(cv2.absdiff(previous, current).mean()) > threshold

"""The frame as a whole: a small grey thumbnail of it, and whether the scene was cut.

A cut (a new shot, a camera switched, the picture's size changed) makes every face track
meaningless: the finder drops them all and looks at the whole frame again.
"""

from __future__ import annotations

import cv2
import numpy as np

from facecam.realtime.processing import Halvings

#: a mean grey change (0..255) this large between frames is a scene cut: every face is dropped
SCENE_CUT = 40.0


def scene_thumbnail(frame: np.ndarray, levels: Halvings | None = None) -> np.ndarray:
    """``(64, 64) uint8`` grey thumbnail for the scene-cut test and the unchanged tiles: an area
    average of the whole frame, made from its halvings (``levels``, when the caller has them:
    the finder makes them anyway, and from them it costs a twentieth of a fresh average)."""
    return (levels or Halvings(frame)).shrunk_gray((64, 64))


def is_scene_cut(previous: np.ndarray | None, current: np.ndarray, threshold: float = SCENE_CUT) -> bool:
    """Two small grey thumbnails ``(h, w) uint8``: a mean change over ``threshold`` is a cut."""
    if previous is None or previous.shape != current.shape:
        return False
    return float(cv2.absdiff(previous, current).mean()) > threshold

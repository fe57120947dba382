"""Reusing the model's last look at a face: a still head in a call, or a crowd under a camera
that pans, shows the model the same face frame after frame, only moved. When a face's crop
is the crop the model last looked at, moved by a shift (measured here by phase correlation),
that look moved by the same shift stands for a new one. At most ``STILL_REUSE`` frames in a
row, so the model still looks at every face at least once in ``STILL_REUSE + 1`` frames
(``ANONYMIZE_STILL_REUSE`` in anonymize: FaceFinder's ``still_reuse``, set per mode by
passes.finder_settings).

Why it is safe: the shifted old crop must match the new one in every 1/8 x 1/8 block of the
crop to within ``STILL_LEVELS`` grey levels on average (``ANONYMIZE_STILL_LEVELS`` in
anonymize, whose pixelation covers a margin around each face). A mouth that opens, a head that
turns, a hand that comes up, a face that moves apart from its background by more than the
shift explains: one block is enough and the model looks again.
"""

from __future__ import annotations

import cv2
import numpy as np

from facecam.realtime.crops import Crop, crop_to_crop

STILL_LEVELS = 6.0
STILL_REUSE = 2
#: in anonymize, where the pixelation covers a margin around each face anyway, a look stands
#: for more frames and through larger changes (see passes.finder_settings). Chosen on the
#: panning group-1 clip (scripts/make_group_clip.py; 12 and 2, 20 and 2, and any change with 2
#: tried too), checked on the group-3 and group-5 clips made the same way
ANONYMIZE_STILL_LEVELS = 12.0
ANONYMIZE_STILL_REUSE = 4
#: the shift is measured on the crops shrunk to this share of their side: phase correlation
#: is sub-pixel (about 0.3 of its pixels), so a 224 px crop's shift is good to about a pixel
SHIFT_SCALE = 0.5


def moved_look(
    looked_crop: Crop,
    looked_gray: np.ndarray,
    looked_probability: np.ndarray,
    crop: Crop,
    gray: np.ndarray,
    levels: float = STILL_LEVELS,
) -> np.ndarray | None:
    """The model's last look, ``looked_probability`` (``(s, s) float32``, seen in
    ``looked_crop`` whose grey was ``looked_gray``), moved onto this frame's ``crop`` (its grey
    ``gray``, same side ``s``); None when the crop shows more than the old one moved (a block
    differs by more than ``levels``, see :func:`looks_the_same`)."""
    matrix = crop_motion(looked_crop, looked_gray, crop, gray, levels)
    if matrix is None:
        return None
    size = gray.shape[0]
    return cv2.warpAffine(looked_probability, matrix, (size, size))


def crop_motion(
    looked_crop: Crop, looked_gray: np.ndarray, crop: Crop, gray: np.ndarray, levels: float = STILL_LEVELS
) -> np.ndarray | None:
    """The ``(2, 3)`` affine that takes the pixels of ``looked_crop`` (its grey ``looked_gray``)
    onto this frame's ``crop`` (its grey ``gray``, the same side) when the new crop shows the
    old one moved: the two crops' own geometry, plus the picture's shift since when the picture
    moved; None when it shows more than that (see :func:`looks_the_same`)."""
    size = gray.shape[0]
    if looked_gray.shape != gray.shape:
        return None
    # where the old crop's pixels are in the new crop if the face stood still in the frame ...
    matrix = crop_to_crop(looked_crop, crop, size)
    before = cv2.warpAffine(looked_gray, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
    if not looks_the_same(before, gray, levels):
        # ... and, when it did not stand still, its own shift since then. A still face is
        # never shifted: the measured shift's error (a fraction of a pixel) would make its
        # edge jitter, which the smoothing then has to hold
        dx, dy = image_shift(before, gray)
        matrix = matrix + np.array([[0.0, 0.0, dx], [0.0, 0.0, dy]])
        before = cv2.warpAffine(looked_gray, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
        if not looks_the_same(before, gray, levels):
            return None
    return matrix


def image_shift(before: np.ndarray, now: np.ndarray) -> tuple[float, float]:
    """``(dx, dy)`` pixels that ``before`` (``(s, s) uint8``) moved by to become ``now``: phase
    correlation of the two shrunk by SHIFT_SCALE, weighted to the middle (where the face is)."""
    side = max(16, round(before.shape[0] * SHIFT_SCALE))
    small_before = cv2.resize(before, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    small_now = cv2.resize(now, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    (dx, dy), _ = cv2.phaseCorrelate(small_before, small_now, hanning_window(side, side))
    scale = before.shape[0] / side
    return dx * scale, dy * scale


def looks_the_same(before: np.ndarray, now: np.ndarray, levels: float = STILL_LEVELS) -> bool:
    """Whether every 1/8 x 1/8 block of ``now`` is within ``levels`` grey levels of ``before``."""
    blocks = cv2.resize(cv2.absdiff(before, now), (8, 8), interpolation=cv2.INTER_AREA)
    return float(blocks.max()) <= levels


_WINDOWS: dict[tuple[int, int], np.ndarray] = {}


def hanning_window(height: int, width: int) -> np.ndarray:
    """``(height, width) float32`` Hanning window for cv2.phaseCorrelate (made once per size)."""
    if (height, width) not in _WINDOWS:
        _WINDOWS[height, width] = cv2.createHanningWindow((width, height), cv2.CV_32F)
    return _WINDOWS[height, width]

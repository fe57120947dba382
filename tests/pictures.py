"""Test pictures and the plain computations the fast paths are checked against."""

from __future__ import annotations

import cv2
import numpy as np

from facecam.realtime import processing


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (0, 0), 3)


def whole_frame_upsample(mask: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The guided upsampling computed over the whole frame (what upsample_mask did before)."""
    h, w = mask.shape
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    guide = processing.Halvings(frame).shrunk_gray((w, h)).astype(np.float32) / 255
    k = (2 * processing.GUIDE_RADIUS + 1,) * 2
    mean_i, mean_p = cv2.blur(guide, k), cv2.blur(mask, k)
    a = (cv2.blur(guide * mask, k) - mean_i * mean_p) / (
        cv2.blur(guide * guide, k) - mean_i * mean_i + processing.GUIDE_EPS
    )
    b = mean_p - a * mean_i
    scale = 1 / (1 - 2 * processing.SNAP)
    a = cv2.blur(a, k) * (scale / 255)
    b = cv2.blur(b, k) * scale - processing.SNAP * scale
    big = frame.shape[1::-1]
    out = cv2.resize(a, big, interpolation=cv2.INTER_LINEAR) * gray + cv2.resize(b, big, interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0, 1)

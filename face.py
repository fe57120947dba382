"""What facecam calls face: the one definition every figure and every mask uses.

A pixel is face where the model's probability of the face classes (the softmax summed over
them) is at least ``FACE_THRESHOLD``. The runtime paints exactly that (the mask mode's 0/255
PNG is the alpha at or above one half), and ``facecam-train evaluate``, the training log's
validation, the model card and export's checks all score it, not the arg-max class (which
differs wherever hair or background share the rest of the probability).
"""

from __future__ import annotations

import cv2
import numpy as np

FACE_THRESHOLD = 0.5


def face_probability(logits: np.ndarray, face_classes: tuple[int, ...]) -> np.ndarray:
    """``(N, C, h, w)`` logits -> ``(N, h, w) float32`` probability of any face class (softmax)."""
    z = np.ascontiguousarray(logits, np.float32)
    if len(face_classes) == 1:
        return _one_class_probability(z, face_classes[0])
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e[:, list(face_classes)].sum(axis=1) / e.sum(axis=1)


def _one_class_probability(z: np.ndarray, face: int) -> np.ndarray:
    """The softmax of one class, 1 / sum_c exp(z_c - z_face), in OpenCV's vectorised exp (5x the
    speed of NumPy's full softmax; a crowd's crops run it a dozen times a frame). Where another
    class is far ahead the exp overflows to inf and the probability is 0, as it should be."""
    n, c, h, w = z.shape
    flat = z.reshape(n, c, h * w)
    total = np.ones((n, h * w), np.float32)
    for k in range(c):
        if k != face:
            total += cv2.exp(cv2.subtract(flat[:, k], flat[:, face]))
    return np.reciprocal(total).reshape(n, h, w)


def is_face(probability: np.ndarray) -> np.ndarray:
    """Face probability (or the runtime's 0..1 alpha) -> ``bool`` face mask."""
    return np.asarray(probability) >= FACE_THRESHOLD

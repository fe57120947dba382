"""What facecam calls face: the one definition every figure and every mask uses.

A pixel is face where the model's probability of the face classes (the softmax summed over
them) is at least ``FACE_THRESHOLD``. The runtime paints exactly that (the mask mode's 0/255
PNG is the alpha at or above one half), and ``facecam-train evaluate``, the training log's
validation, the model card and export's checks all score it, not the arg-max class (which
differs wherever hair or background share the rest of the probability).
"""

from __future__ import annotations

import numpy as np

FACE_THRESHOLD = 0.5


def face_probability(logits: np.ndarray, face_classes: tuple[int, ...]) -> np.ndarray:
    """``(N, C, h, w)`` logits -> ``(N, h, w) float32`` probability of any face class (softmax)."""
    z = np.asarray(logits, np.float32)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    face = e[:, list(face_classes)].sum(axis=1)
    return face / e.sum(axis=1)


def is_face(probability: np.ndarray) -> np.ndarray:
    """Face probability (or the runtime's 0..1 alpha) -> ``bool`` face mask."""
    return np.asarray(probability) >= FACE_THRESHOLD

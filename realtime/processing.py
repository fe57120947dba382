"""Pure pre- and post-processing around the model: sizes, tensors, probabilities, upsampling.

Everything here is a pure function of its arguments; shapes, dtypes and colour order are in
each docstring. The numbers (size, colour order, mean/std, face classes) come from the
model card, never from this file.
"""

from __future__ import annotations

import cv2
import numpy as np

from facecam.model_card import ModelCard

#: inference sides are rounded to this multiple (the models downsample by 32)
SIZE_MULTIPLE = 32
#: guided-filter settings for the edge-aware upsampling (radius in low-res pixels, regulariser)
GUIDE_RADIUS = 1
GUIDE_EPS = 4e-3
#: mask values within this distance of 0 or 1 after upsampling are snapped to 0 or 1
SNAP = 0.02


def inference_size(frame_hw: tuple[int, int], card: ModelCard) -> tuple[int, int]:
    """``(h, w)`` to run the model at for a frame of ``frame_hw = (H, W)``.

    A fixed-size model gets its card size. A dynamic one keeps the frame's aspect ratio with
    the longer side at the card's longer side (see :func:`scaled_size`), so a portrait phone
    clip is not squashed into a square.
    """
    if not card.dynamic_size:
        return tuple(card.input_size)
    return scaled_size(frame_hw, max(card.input_size))


def scaled_size(frame_hw: tuple[int, int], long_side: float) -> tuple[int, int]:
    """``(h, w)``: the frame's aspect ratio with its longer side at ``long_side``, each side a
    multiple of 32 (the models downsample by 32), at least 32."""
    height, width = frame_hw
    scale = long_side / max(height, width)

    def snap(v: float) -> int:
        return max(SIZE_MULTIPLE, int(v * scale / SIZE_MULTIPLE + 0.5) * SIZE_MULTIPLE)

    return snap(height), snap(width)


def preprocess(frame: np.ndarray, size: tuple[int, int], card: ModelCard) -> np.ndarray:
    """``(H, W, 3) uint8 BGR`` -> ``(1, 3, h, w) float32`` in the card's colour order.

    Raw 0..255 values when the model normalises in its graph, else ``(x/255 - mean)/std``.
    """
    h, w = size
    small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    if card.color_order == "RGB":
        small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    x = small.astype(np.float32)
    if not card.normalization_in_graph:
        x = (x / 255.0 - np.asarray(card.mean, np.float32)) / np.asarray(card.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def upsample_mask(
    mask: np.ndarray, frame: np.ndarray, gray: np.ndarray | None = None, small_gray: np.ndarray | None = None
) -> np.ndarray:
    """Edge-aware upsampling: ``(h, w) float32`` 0..1 mask -> ``(H, W) float32`` at the frame's size.

    A fast guided filter (He & Sun, 2015): the linear model mask = a * gray + b is fitted
    at low resolution against the downsized frame, its coefficients upsampled bilinearly
    and applied to the full-resolution gray frame, so the mask edge snaps to the image edge
    instead of a blurry bilinear staircase. ``frame`` is ``(H, W, 3) uint8 BGR``; pass
    ``gray`` (``(H, W) uint8``) and ``small_gray`` (``(h, w) uint8``) when already computed.
    """
    h, w = mask.shape
    big_h, big_w = frame.shape[:2]
    if gray is None:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if small_gray is None:
        small_gray = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)
    guide = small_gray.astype(np.float32) * (1 / 255)
    k = (2 * GUIDE_RADIUS + 1, 2 * GUIDE_RADIUS + 1)
    mean_i = cv2.blur(guide, k)
    mean_p = cv2.blur(mask, k)
    cov_ip = cv2.blur(guide * mask, k) - mean_i * mean_p
    var_i = cv2.blur(guide * guide, k) - mean_i * mean_i
    a = cov_ip / (var_i + GUIDE_EPS)
    b = mean_p - a * mean_i
    # Stretch [SNAP, 1 - SNAP] to [0, 1]: the filter's faint residue far from any edge becomes an
    # exact 0 or 1, so the background is untouched and the face exactly kept. Bilinear
    # upsampling is linear, so the stretch (and the 1/255 of the gray) is applied at low resolution.
    scale = 1.0 / (1.0 - 2 * SNAP)
    a = cv2.blur(a, k) * (scale / 255)
    b = cv2.blur(b, k) * scale - SNAP * scale
    out = cv2.multiply(cv2.resize(a, (big_w, big_h), interpolation=cv2.INTER_LINEAR), gray, dtype=cv2.CV_32F)
    cv2.add(out, cv2.resize(b, (big_w, big_h), interpolation=cv2.INTER_LINEAR), dst=out)
    return np.clip(out, 0.0, 1.0, out=out)

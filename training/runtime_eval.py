"""Score an exported ONNX model as the runtime runs it: ``facecam-train evaluate --model X.onnx``.

A checkpoint is scored at its square training size (``--checkpoint``); a shipped ``.onnx`` has
no checkpoint, so this path runs each photo through the runtime's :class:`Segmenter` instead:
the photo keeps its aspect with the long side at the model's size (each side a multiple of
32), face = the Segmenter's face probability > 0.5 at that inference size, and the label is
resized to the same size (nearest) to be compared with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from facecam.training.dataset import FaceSegDataset, read_pair
from facecam.training.light import darken
from facecam.training.metrics import face_dice_iou, not_face_painted

#: the runtime's face threshold on the probability
FACE_THRESHOLD = 0.5


def runtime_face(segmenter, image_bgr: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8 BGR`` -> ``(h, w) uint8`` face map (1 face, 0 not) at the Segmenter's inference size."""
    return (segmenter.probability(image_bgr) > FACE_THRESHOLD).astype(np.uint8)


def evaluate_onnx(
    model: str | Path,
    data: Path,
    split: str,
    light: str = "none",
    provider: str = "cpu",
    threads: int = 0,
    segmenter=None,
) -> dict:
    """Face Dice / IoU of an ONNX model through the runtime on ``data``'s ``split``, each photo
    darkened by :func:`facecam.training.light.darken` with ``light`` first.

    Returns ``{"dice", "iou", "not_face_painted", "iou_per_image" ((N,) float64), "images"}``;
    ``dice`` and ``iou`` are means over images. Pass an open ``segmenter`` to reuse it
    (``model``, ``provider`` and ``threads`` are then unused).
    """
    from tqdm import tqdm

    from facecam.realtime.segmenter import Segmenter

    names = FaceSegDataset(data, split).names  # checks the layout and every file up front
    own = segmenter is None
    if own:
        segmenter = Segmenter(model, provider=provider, threads=threads)
    dices, ious = [], []
    painted = labelled = 0
    try:
        for name in tqdm(names, desc=light, disable=not sys.stderr.isatty(), leave=False, dynamic_ncols=True):
            rgb, label = read_pair(data, name)
            pred = runtime_face(segmenter, cv2.cvtColor(darken(rgb, light), cv2.COLOR_RGB2BGR))
            target = cv2.resize(label, pred.shape[::-1], interpolation=cv2.INTER_NEAREST)
            dice, iou = face_dice_iou(pred, target)
            counts = not_face_painted(pred, target)
            painted, labelled = painted + counts[0], labelled + counts[1]
            dices.append(float(dice[0]))
            ious.append(float(iou[0]))
    finally:
        if own:
            segmenter.close()
    return {
        "dice": float(np.mean(dices)),
        "iou": float(np.mean(ious)),
        "not_face_painted": painted / labelled if labelled else float("nan"),
        "iou_per_image": np.asarray(ious),
        "images": len(names),
    }

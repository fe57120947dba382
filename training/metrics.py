"""Face Dice and IoU, the figures the original reported (Dice 0.98 / IoU 0.96 on CelebAMask-HQ).

Both are per image, on the binary face mask (``facecam.face.is_face`` of the prediction; the
label's face classes), with pixels labelled 255 left out, then averaged over images. An image with a face in neither the
prediction nor the truth scores 1 (nothing to find, nothing found).
"""

from __future__ import annotations

import numpy as np

from facecam.training.dataset import LABEL_IGNORE


def face_dice_iou(
    face: np.ndarray, target: np.ndarray, face_classes: tuple[int, ...] = (1,)
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image face Dice and IoU.

    face: ``(N, H, W)`` or ``(H, W)`` bool, the predicted face (``facecam.face.is_face``); target:
    the same shape of labels, ``face_classes`` its face values, 255 = ignore.
    Returns two ``(N,)`` float64 arrays.
    """
    pred = np.asarray(face)
    if pred.dtype != bool:  # a class map would count hair, 254 and 255 as face without a word
        raise ValueError(f"face must be a bool mask (facecam.face.is_face), got {pred.dtype}")
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    if pred.ndim == 2:
        pred, target = pred[None], target[None]
    valid = target != LABEL_IGNORE
    p = pred & valid
    t = np.isin(target, face_classes) & valid
    inter = (p & t).sum(axis=(1, 2)).astype(np.float64)
    sum_pt = p.sum(axis=(1, 2)) + t.sum(axis=(1, 2)).astype(np.float64)
    union = sum_pt - inter
    empty = sum_pt == 0
    dice = np.where(empty, 1.0, 2 * inter / np.maximum(sum_pt, 1))
    iou = np.where(empty, 1.0, inter / np.maximum(union, 1))
    return dice, iou


def touching_labelled_face(face: np.ndarray, target: np.ndarray, face_classes: tuple[int, ...] = (1,)) -> np.ndarray:
    """``face`` (bool ``(H, W)``) without the painted blobs that touch no labelled face pixel.

    A portrait set such as LFW Part Labels labels only the person it is about; the others in
    the photo (a neighbour's face, a crowd behind) are background there. A runtime that finds
    every face paints them, and plain IoU charges it for that. IoU of this mask is the figure
    for the labelled face alone; plain IoU stays the headline figure.
    """
    import cv2

    face = np.asarray(face, bool)
    _, blobs = cv2.connectedComponents(face.astype(np.uint8), connectivity=8)
    labelled = np.isin(np.asarray(target), face_classes)
    touching = np.unique(blobs[face & labelled])
    return face & np.isin(blobs, touching[touching > 0])


def other_faces(
    target: np.ndarray,
    boxes: list[list[float]],
    face_classes: tuple[int, ...] = (1,),
    min_score: float = 0.5,
    labelled_share: float = 0.2,
) -> np.ndarray:
    """``(H, W) bool``: the boxes of faces an independent face finder saw (``[[x0, y0, x1, y1,
    score], ...]``, score ``min_score`` or more) that the labels call something else: under
    ``labelled_share`` of the box is labelled face. A person in the background, a face on a
    poster: a runtime that finds every face paints them, and the labels charge it for that.
    Pixels of the labelled face itself are never in it."""
    target = np.asarray(target)
    labelled = np.isin(target, face_classes)
    out = np.zeros(target.shape[:2], bool)
    height, width = out.shape
    for x0, y0, x1, y1, score in (box[:5] for box in boxes):
        if score < min_score:
            continue
        c0, r0 = max(0, int(round(x0))), max(0, int(round(y0)))
        c1, r1 = min(width, int(round(x1))), min(height, int(round(y1)))
        if c1 > c0 and r1 > r0 and labelled[r0:r1, c0:c1].mean() < labelled_share:
            out[r0:r1, c0:c1] = True
    return out & ~labelled


def not_face_painted(face: np.ndarray, target: np.ndarray, face_classes: tuple[int, ...] = (1,)) -> tuple[int, int]:
    """Pixels labelled as known not-face (background, hair, 254; not ignore) that ``face`` (bool) paints.

    Returns ``(painted, labelled)`` counts, to pool over a data set: their ratio is the face
    false-positive rate, the figure for arms, clothes and rooms in the person negatives.
    """
    target = np.asarray(target)
    known_not_face = (target != LABEL_IGNORE) & ~np.isin(target, face_classes)
    return int((np.asarray(face, bool) & known_not_face).sum()), int(known_not_face.sum())


#: an image under this face IoU counts as a failure in the IoU distribution
IOU_FAIL = 0.80


def iou_distribution(ious: np.ndarray) -> dict[str, float]:
    """Per-image face IoUs ``(N,)`` -> their mean, 10th percentile (linear interpolation) and the
    share of images under :data:`IOU_FAIL` (0.80): a mean hides the few photos a model fails on."""
    ious = np.asarray(ious, np.float64)
    if ious.size == 0:
        return {"mean": float("nan"), "p10": float("nan"), "share_under_0.80": float("nan")}
    return {
        "mean": float(ious.mean()),
        "p10": float(np.percentile(ious, 10)),
        "share_under_0.80": float((ious < IOU_FAIL).mean()),
    }

"""Score a model the way the runtime uses it: ``facecam-train evaluate``.

Every figure facecam reports for a model comes from here: each photo goes through
:meth:`facecam.api.FaceStream.process_photo`, exactly the path of ``facecam --images DIR --mode
mask`` (faces found at every scale, segmented in their crops, pockets closed, upsampled to the
photo's size), and face is :func:`facecam.face.is_face` of that mask, compared with the label at
the photo's own size. A training checkpoint takes the same path: :class:`TorchSegmenter` gives
its torch model the Segmenter's interface, so a checkpoint and its ONNX export score the same
to float rounding.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError
from facecam.face import face_probability, is_face
from facecam.training.dataset import FaceSegDataset, read_pair
from facecam.training.light import darken
from facecam.training.metrics import face_dice_iou, not_face_painted, other_faces, touching_labelled_face


class TorchSegmenter:
    """A training checkpoint behind the runtime Segmenter's interface (``card``, ``infer_batch``)."""

    provider = "torch"

    def __init__(self, ckpt: dict, device_name: str = "cpu") -> None:
        import torch

        from facecam.export.onnx_export import RawPixelModel, card_from_checkpoint
        from facecam.training.checkpoint import model_from_checkpoint
        from facecam.training.train import pick_device

        self.card = card_from_checkpoint(ckpt)
        self.device = pick_device(device_name)
        model = model_from_checkpoint(ckpt)
        self.model = RawPixelModel(model, self.card.mean, self.card.std).to(self.device).eval()
        self.path = Path(ckpt.get("config", {}).get("out", "checkpoint"))
        self._torch = torch

    def infer_batch(self, tensor: np.ndarray) -> np.ndarray:
        """``(N, 3, h, w) float32`` raw pixels -> ``(N, h, w) float32`` face probability."""
        with self._torch.no_grad():
            logits = self.model(self._torch.from_numpy(tensor).to(self.device)).float().cpu().numpy()
        return face_probability(logits, self.card.face_classes)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        return self.infer_batch(tensor)[0]

    def infer_first_looks(self, tensor: np.ndarray) -> np.ndarray:
        return self.infer_batch(tensor)

    def close(self) -> None:
        self.model = None


def runtime_face(stream, image_bgr: np.ndarray) -> np.ndarray:
    """``(H, W, 3) uint8 BGR`` -> ``(H, W) bool``: the face ``facecam --images --mode mask`` paints."""
    return is_face(stream.process_photo(image_bgr).mask)


def evaluate_runtime(
    segmenter, data: Path, split: str, light: str = "none", verifier="facecam_verifier", teacher: dict | None = None
) -> dict:
    """Face Dice / IoU of ``segmenter`` (a runtime Segmenter or a :class:`TorchSegmenter`) through
    the runtime on ``data``'s ``split``, each photo darkened by :func:`facecam.training.light.darken`
    with ``light`` first.

    Returns ``{"dice", "iou", "iou_labelled_face_only", "not_face_painted", "iou_per_image" ((N,)
    float64), "images"}``; ``dice`` and ``iou`` are means over images; ``iou_labelled_face_only``
    leaves out painted blobs that touch no labelled face (other people's faces, see
    :func:`facecam.training.metrics.touching_labelled_face`).

    ``teacher``: an independent face finder's boxes per photo (``{stem: [[x0, y0, x1, y1,
    score], ...]}``, CenterFace run offline). Then also ``iou_other_faces_ignored`` (IoU with the
    pixels of the faces it found that the labels call background left out of the count, see
    :func:`facecam.training.metrics.other_faces`) and ``not_face_painted_on_other_faces`` (the
    share of the not-face painted that lies there), with ``teacher_photos``, how many of the
    split's photos the boxes name (none at all is an error).
    """
    from tqdm import tqdm

    from facecam.api import FaceStream

    names = FaceSegDataset(data, split).names  # checks the layout and every file up front
    if teacher is not None and not any(name in teacher for name in names):
        # a box file of another set, or keyed by file name: the figure would be plain IoU renamed
        raise FacecamError(f"none of the {len(names)} photos of {data}'s {split} split has teacher boxes")
    dices, ious, ious_own, ious_ignored = [], [], [], []
    painted = labelled = painted_on_others = 0
    with FaceStream(segmenter=segmenter, mode="mask", smoothing=0.0, verifier=verifier) as stream:
        for name in tqdm(names, desc=light, disable=not sys.stderr.isatty(), leave=False, dynamic_ncols=True):
            rgb, label = read_pair(data, name)
            face = runtime_face(stream, cv2.cvtColor(darken(rgb, light), cv2.COLOR_RGB2BGR))
            dice, iou = face_dice_iou(face, label)
            counts = not_face_painted(face, label)
            painted, labelled = painted + counts[0], labelled + counts[1]
            dices.append(float(dice[0]))
            ious.append(float(iou[0]))
            ious_own.append(float(face_dice_iou(touching_labelled_face(face, label), label)[1][0]))
            if teacher is not None:
                others = other_faces(label, teacher.get(name, []))
                ious_ignored.append(float(face_dice_iou(face & ~others, label)[1][0]))
                painted_on_others += not_face_painted(face & others, label)[0]
    extra = {}
    if teacher is not None:
        extra["teacher_photos"] = sum(name in teacher for name in names)
        extra["iou_other_faces_ignored"] = float(np.mean(ious_ignored))
        extra["not_face_painted_on_other_faces"] = painted_on_others / painted if painted else 0.0
    return {
        **extra,
        "dice": float(np.mean(dices)),
        "iou": float(np.mean(ious)),
        "iou_labelled_face_only": float(np.mean(ious_own)),
        "not_face_painted": painted / labelled if labelled else float("nan"),
        "iou_per_image": np.asarray(ious),
        "images": len(names),
    }

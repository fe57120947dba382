"""The faces a portrait set's labels call background: other_faces and evaluate --teacher-boxes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from facecam.errors import FacecamError
from facecam.training.metrics import face_dice_iou, other_faces


def _labelled_photo() -> np.ndarray:
    label = np.zeros((40, 60), np.uint8)
    label[10:30, 5:25] = 1  # the person the photo is about
    label[30:40, 5:25] = 255  # left out
    return label


def test_other_faces_marks_the_found_faces_the_labels_call_background():
    label = _labelled_photo()
    boxes = [
        [40, 8, 55, 28, 0.9],  # a neighbour's face, labelled background
        [4, 9, 26, 31, 0.95],  # the labelled face itself
        [30, 0, 38, 8, 0.3],  # a doubtful one
    ]
    others = other_faces(label, boxes)
    assert others[8:28, 40:55].all()
    assert others.sum() == 15 * 20  # neither the labelled face's box nor the doubtful one
    assert not (others & (label == 1)).any()
    # a box mostly over background but touching the labelled face never takes its pixels
    others = other_faces(label, [[20, 10, 60, 30, 0.9]])
    assert others[10:30, 25:60].all() and not others[10:30, 20:25].any()
    # painting the neighbour costs plain IoU, not the IoU with the other faces left out
    face = (label == 1) | other_faces(label, boxes[:1])
    plain = face_dice_iou(face, label)[1][0]
    ignored = face_dice_iou(face & ~other_faces(label, boxes), label)[1][0]
    assert plain < 0.6 and ignored == 1.0


def _tiny_set(root):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        image = rng.integers(40, 200, (64, 64, 3), dtype=np.uint8)
        cv2.ellipse(image, (32, 30), (12, 16), 0, 0, 360, (120, 160, 220), -1)
        label = np.zeros((64, 64), np.uint8)
        cv2.ellipse(label, (32, 30), (12, 16), 0, 0, 360, 1, -1)
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), image)
        cv2.imwrite(str(root / "labels" / f"{name}.png"), label)
    (root / "val.txt").write_text("a\nb\n")
    return root


class PaintsEverything:
    """A segmenter (the interface evaluate_runtime takes) that calls every pixel face."""

    provider = "test"

    def __init__(self, card) -> None:
        self.card, self.path = card, Path("paints_everything")

    def infer_batch(self, tensor: np.ndarray) -> np.ndarray:
        return np.ones((tensor.shape[0], *tensor.shape[2:]), np.float32)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        return self.infer_batch(tensor)[0]

    infer_first_looks = infer_batch

    def close(self) -> None:
        pass


def test_evaluate_leaves_out_only_the_other_faces(tmp_path, tiny_model):
    """Everything painted: plain IoU is the face's share of the photo; with a found face over the
    rest of photo a left out, a's IoU is 1, and all of a's not-face paint lies on it."""
    from facecam.realtime.segmenter import Segmenter
    from facecam.training.runtime_eval import evaluate_runtime

    data = _tiny_set(tmp_path / "set")
    with Segmenter(tiny_model, provider="cpu") as segmenter:
        everything = PaintsEverything(segmenter.card)
    plain = evaluate_runtime(everything, data, "val", verifier=None)
    teacher = {"a": [[0, 0, 64, 64, 0.9]], "b": [[0, 0, 8, 8, 0.3]]}  # b's box is doubtful: not used
    ignored = evaluate_runtime(everything, data, "val", verifier=None, teacher=teacher)
    assert plain["iou"] < 0.3 and ignored["iou"] == plain["iou"] and ignored["teacher_photos"] == 2
    assert ignored["iou_other_faces_ignored"] == pytest.approx((1.0 + plain["iou_per_image"][1]) / 2)
    assert ignored["not_face_painted_on_other_faces"] == pytest.approx(0.5)  # a's not-face, not b's
    with pytest.raises(FacecamError, match="none of the 2 photos"):
        evaluate_runtime(everything, data, "val", verifier=None, teacher={"a.jpg": teacher["a"]})


def test_evaluate_takes_teacher_boxes_and_refuses_bad_ones(tmp_path, tiny_model):
    data = _tiny_set(tmp_path / "set")
    boxes = tmp_path / "boxes.json"
    args = ("facecam-train", "evaluate", "--model", str(tiny_model), "--data", str(data), "--split", "val")
    plain = json.loads(run_cli(*args).stdout)
    assert "face_iou_other_faces_ignored" not in plain
    boxes.write_text(json.dumps({"a": [[0, 0, 64, 64, 0.9]], "b": []}))
    r = run_cli(*args, "--teacher-boxes", str(boxes))
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout)
    assert figures["teacher_photos"] == 2 and figures["face_iou"] == plain["face_iou"]
    assert {"face_iou_other_faces_ignored", "not_face_painted_share_on_other_faces"} <= set(figures)
    boxes.write_text(json.dumps({"a.jpg": [[0, 0, 64, 64, 0.9]]}))  # keyed by file name: names no photo
    assert_clean_error(run_cli(*args, "--teacher-boxes", str(boxes)), "none of the 2 photos", "teacher boxes")
    boxes.write_text(json.dumps([[1, 2, 3, 4, 0.9]]))
    assert_clean_error(run_cli(*args, "--teacher-boxes", str(boxes)), "teacher boxes must map photo names")
    boxes.write_text('{"a": [[0, 0, NaN, 64, 0.9]]}')
    assert_clean_error(run_cli(*args, "--teacher-boxes", str(boxes)), "five finite numbers")
    boxes.write_text("{not json")
    assert_clean_error(run_cli(*args, "--teacher-boxes", str(boxes)), "cannot read teacher boxes")
    assert_clean_error(run_cli(*args, "--teacher-boxes", str(tmp_path / "none.json")), "cannot read teacher boxes")

"""facecam-train verifier: proposals labelled by teacher boxes, trained, exported, loaded at run time."""

from __future__ import annotations

import json

import cv2
import numpy as np
from conftest import assert_clean_error, run_cli

from facecam.realtime.crops import Box
from facecam.training.verifier import proposal_label


def test_proposals_are_labelled_by_the_teachers_boxes():
    teacher = [[100, 100, 140, 150, 0.9], [300, 100, 330, 140, 0.4]]
    assert proposal_label(Box(105, 110, 138, 150), teacher) == 1  # on a sure face
    assert proposal_label(Box(305, 105, 328, 138), teacher) is None  # only on a doubtful one: left out
    assert proposal_label(Box(10, 10, 40, 40), teacher) == 0  # on none: not a face


def test_train_export_and_load_a_verifier(tiny_model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    boxes = {}
    rng = np.random.default_rng(0)
    for i in range(6):
        image = rng.integers(60, 200, (120, 160, 3), dtype=np.uint8)
        cv2.ellipse(image, (80, 60), (18, 24), 0, 0, 360, (120, 160, 220), -1)
        cv2.imwrite(str(photos / f"p{i}.jpg"), image)
        boxes[f"p{i}"] = [[62, 36, 98, 84, 0.9]]
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    out = tmp_path / "v.onnx"
    args = ("facecam-train", "verifier", "--photos", str(photos), str(tmp_path / "boxes.json"), "every:3")
    result = run_cli(*args, "--segmenter", str(tiny_model), "--epochs", "1", "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "2 held out" in result.stderr
    from facecam.realtime.verifier import Verifier

    verifier = Verifier(out)
    assert verifier.card.model_name == "facecam_verifier" and "holdout_face_kept" in verifier.card.metrics
    assert verifier.scores([cv2.imread(str(photos / "p0.jpg"))]).shape == (1,)
    assert_clean_error(run_cli(*args[:4], str(tmp_path / "none.json"), "none", "--out", str(out)), "none.json")


def test_the_verifier_trains_on_grey_crops_too():
    """A black-and-white photo's face (or a camera's infrared one) must look like a face to it:
    the shipped verifier trained on colour only kept 35% of grey faces, against 93% in colour."""
    from facecam.training.verifier import GRAY_SHARE, _augmented

    colour = np.zeros((400, 8, 8, 3), np.uint8)
    colour[..., 0], colour[..., 1], colour[..., 2] = 200, 120, 60  # a skin tone: grey only when made so
    out = _augmented(colour, np.random.default_rng(0))
    grey = (out[..., 0] == out[..., 1]).all(axis=(1, 2)) & (out[..., 1] == out[..., 2]).all(axis=(1, 2))
    assert abs(grey.mean() - GRAY_SHARE) < 0.06
    luma = 0.299 * 200 + 0.587 * 120 + 0.114 * 60
    assert abs(float(np.median(out[grey][..., 0])) - luma) < 60  # luma, then the brightness jitter

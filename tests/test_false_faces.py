"""prepare negatives: crops of what the runtime wrongly follows as a face, with the photos' own labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

import facecam
from facecam.training.dataset import LABEL_IGNORE, LABEL_NOT_FACE
from facecam.training.false_faces import MIN_FALSE_PIXELS, false_face_boxes


def test_a_box_painted_mostly_on_labelled_not_face_is_false():
    label = np.full((100, 100), LABEL_IGNORE, np.uint8)
    label[10:40, 10:40] = 1  # a labelled face
    label[60:90, 60:90] = LABEL_NOT_FACE  # a labelled hand
    face = np.zeros((100, 100), bool)
    face[10:40, 10:40] = face[60:90, 60:90] = face[60:90, 10:40] = True  # the last on unlabelled pixels
    boxes = [np.array(b, float) for b in ([10, 10, 40, 40], [60, 60, 90, 90], [10, 60, 40, 90])]
    false = false_face_boxes(face, label, boxes)
    assert len(false) == 1 and list(false[0]) == [60, 60, 90, 90]  # not the face, not what nobody labelled
    few = np.zeros_like(face)
    few[60:62, 60 : 60 + MIN_FALSE_PIXELS // 2 - 1] = True  # a sliver is not a false face
    assert false_face_boxes(few, label, boxes) == []


@pytest.fixture(scope="module")
def labelled_frames(tmp_path_factory) -> Path:
    """Two frames of the sample clip; in "wrong" the face is labelled not face, in "right" it is
    face; nothing else is labelled (so only the face can be a false face)."""
    root = tmp_path_factory.mktemp("negatives")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    frame = next(iter(facecam.video_frames(facecam.SAMPLE_VIDEO)))
    for name, value in (("wrong", LABEL_NOT_FACE), ("right", 1)):
        label = np.full(frame.shape[:2], LABEL_IGNORE, np.uint8)
        label[50:215, 305:455] = value
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), frame)
        cv2.imwrite(str(root / "labels" / f"{name}.png"), label)
    (root / "train.txt").write_text("wrong\nright\n")
    (root / "right.txt").write_text("right\n")
    return root


def test_prepare_negatives_writes_crops_of_the_false_faces_with_their_labels(labelled_frames, tmp_path):
    out = tmp_path / "neg"
    r = run_cli("facecam-train", "prepare", "negatives", "--src", str(labelled_frames), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "in 1 of 2 photos" in r.stdout
    names = (out / "train.txt").read_text().split()
    assert names and all(n.startswith("wrong_") for n in names)
    label = cv2.imread(str(out / "labels" / f"{names[0]}.png"), cv2.IMREAD_UNCHANGED)
    image = cv2.imread(str(out / "images" / f"{names[0]}.jpg"))
    assert image.shape[:2] == label.shape and (label == LABEL_NOT_FACE).mean() > 0.1 and not (label == 1).any()


def test_no_false_face_and_held_out_photos_are_one_line_errors(labelled_frames, tmp_path):
    common = ("facecam-train", "prepare", "negatives", "--src", str(labelled_frames))
    r = run_cli(*common, "--split", "right", "--out", str(tmp_path / "o"))
    assert_clean_error(r, "follows no false face")
    (labelled_frames / "holdout.txt").write_text("wrong\n")
    try:
        assert_clean_error(run_cli(*common, "--out", str(tmp_path / "o")), "holdout.txt")
    finally:
        (labelled_frames / "holdout.txt").unlink()
    assert not (tmp_path / "o").exists()

"""prepare crops: face crops cut as the runtime cuts them, near-certain labels, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

import facecam
from facecam.training.dataset import LABEL_IGNORE, LABEL_NOT_FACE
from facecam.training.face_crops import body_zone, face_zone, scene_labels


@pytest.fixture(scope="module")
def skin_photos(tmp_path_factory) -> Path:
    """Two frames of the sample clip with a rough skin label (face box and a 'hand' patch)."""
    root = tmp_path_factory.mktemp("skin")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    frame = next(iter(facecam.video_frames(facecam.SAMPLE_VIDEO)))
    for name in ("a", "b"):
        label = np.zeros(frame.shape[:2], np.uint8)
        label[50:215, 305:455] = 1  # the face's skin
        label[400:470, 40:120] = 1  # skin far from any face: a hand
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), frame)
        cv2.imwrite(str(root / "labels" / f"{name}.png"), label)
    (root / "train.txt").write_text("a\nb\n")
    (root / "boxes.json").write_text(json.dumps({"a": [[300, 40, 460, 220, 0.9]], "b": [[300, 40, 460, 220, 0.4]]}))
    return root


def test_labels_claim_face_only_in_a_sure_face_zone_and_skin_far_away_as_not_face():
    source = np.zeros((400, 400), np.uint8)
    source[100:160, 150:210] = 1  # face skin
    source[350:390, 20:60] = 1  # a hand, far away
    sure, unsure = np.array([[150, 100, 210, 160, 0.9]]), np.array([[150, 100, 210, 160, 0.4]])
    labels = scene_labels(source, "skin", sure)
    assert (labels[110:150, 160:200] == 1).all()
    assert (labels[350:390, 20:60] == LABEL_NOT_FACE).all()
    assert (labels[0:20, 0:20] == LABEL_IGNORE).all()  # not skin, unknown: claimed nothing
    assert (labels[body_zone(sure[0], (400, 400)) & (source == 0)] != 1).all()
    doubtful = scene_labels(source, "skin", unsure)
    assert not (doubtful == 1).any() and (doubtful[face_zone(unsure[0], (400, 400))] == LABEL_IGNORE).all()


def test_prepare_crops_writes_the_sure_faces_crops(skin_photos, tmp_path):
    out = tmp_path / "crops"
    common = ("facecam-train", "prepare", "crops", "--src", str(skin_photos), "--labels", "skin")
    r = run_cli(*common, "--boxes", str(skin_photos / "boxes.json"), "--out", str(out))
    assert r.returncode == 0, r.stderr
    names = (out / "train.txt").read_text().split()
    assert names == ["a_f0_0", "a_f0_1"]  # the unsure box of b gives no crop
    image = cv2.imread(str(out / "images" / "a_f0_0.jpg"))
    label = cv2.imread(str(out / "labels" / "a_f0_0.png"), cv2.IMREAD_UNCHANGED)
    assert image.shape[:2] == label.shape and 0.05 < (label == 1).mean() < 0.5  # the face, a 2.2x crop around it


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ({"a": [[300, 40, 460, 220]]}, "five finite numbers"),
        ({"a": [[300, 40, 460, 220, 0.9], [1, 2]]}, "five finite numbers"),
        ([1, 2, 3], "map photo names"),
        ("not json", "cannot read teacher boxes"),
        ('{"a": [[NaN, 40, 460, 220, 0.9]]}', "five finite numbers"),  # JSON's NaN loads as a float
        ({"a": [[300, 40, 460, 220, True]]}, "five finite numbers"),  # and true as an int
    ],
)
def test_bad_boxes_are_one_line_errors(skin_photos, tmp_path, boxes, expected):
    path = tmp_path / "boxes.json"
    path.write_text(boxes if isinstance(boxes, str) else json.dumps(boxes))
    args = ("--src", str(skin_photos), "--labels", "skin", "--boxes", str(path), "--out", str(tmp_path / "o"))
    assert_clean_error(run_cli("facecam-train", "prepare", "crops", *args), expected)
    assert not (tmp_path / "o").exists()


def test_missing_photos_and_held_out_photos_are_refused(skin_photos, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ("--src", str(skin_photos), "--labels", "skin", "--boxes", str(skin_photos / "boxes.json"))
    r = run_cli("facecam-train", "prepare", "crops", *args, "--boxes-photos", str(empty), "--out", str(tmp_path / "o"))
    assert_clean_error(r, "'a' is missing or unreadable")
    held = tmp_path / "held"
    held.mkdir()
    for sub in ("images", "labels"):
        (held / sub).symlink_to(skin_photos / sub)
    (held / "train.txt").write_text("a\nb\n")
    (held / "holdout.txt").write_text("b\n")
    r = run_cli("facecam-train", "prepare", "crops", "--src", str(held), *args[2:], "--out", str(tmp_path / "o"))
    assert_clean_error(r, "holdout.txt")
    assert not (tmp_path / "o").exists()


def test_recover_refuses_the_fp16_twin(tmp_path, skin_photos):
    shipped = Path(__file__).resolve().parents[1] / "weights" / "facecam_face_fp16.onnx"
    args = ("--model", str(shipped), "--data", str(skin_photos), "--out", str(tmp_path / "x.pt"))
    assert_clean_error(run_cli("facecam-train", "recover", *args), "fp16 twin")
    assert not (tmp_path / "x.pt").exists()

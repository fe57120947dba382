"""Slow tier: the shipped default model on real faces, through the CLI, against the quality floor."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA, run_cli

from facecam.training.metrics import face_dice_iou, touching_labelled_face

LFW = SHARED_DATA / "lfw-parts"
#: the labelled person's face alone (painted blobs that touch no labelled face left out)
FLOOR_IOU = 0.90
#: plain IoU: LFW labels the other people in a photo background, which a runtime that finds
#: every face paints, so plain IoU charges it for them (100 photos: the default since 2026-11-28
#: 0.896 plain, 0.905 for the labelled face; the previous default 0.905 and 0.908)
FLOOR_IOU_PLAIN = 0.88
PHOTOS = 100

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (LFW / "test.txt").is_file(), reason="../shared/data/lfw-parts is not here"),
]


def test_default_model_meets_the_iou_floor_on_lfw_test(tmp_path):
    """The CLI's masks on 100 lfw-parts/test photos meet the floor, and facecam-train evaluate
    reports the same figures to 4 decimals (one definition of face, one path)."""
    names = (LFW / "test.txt").read_text().split()
    picked = names[:: len(names) // PHOTOS][:PHOTOS]  # spread over the whole split
    data = tmp_path / "data"
    for sub in ("images", "labels"):
        (data / sub).mkdir(parents=True)
    for name in picked:
        shutil.copy(LFW / "images" / f"{name}.jpg", data / "images")
        shutil.copy(LFW / "labels" / f"{name}.png", data / "labels")
    (data / "picked.txt").write_text("\n".join(picked) + "\n")
    result = run_cli(
        "facecam", "--images", str(data / "images"), "--out", str(tmp_path / "masks"), "--mode", "mask", timeout=300
    )
    assert result.returncode == 0, result.stderr
    dice, iou, iou_own = [], [], []
    for name in picked:
        pred = cv2.imread(str(tmp_path / "masks" / f"{name}.png"), cv2.IMREAD_UNCHANGED) >= 128
        label = cv2.imread(str(LFW / "labels" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        d, i = face_dice_iou(pred, label)
        dice.append(d[0])
        iou.append(i[0])
        iou_own.append(face_dice_iou(touching_labelled_face(pred, label), label)[1][0])
    print(
        f"default model on {len(picked)} lfw-parts/test photos via the CLI: Dice {np.mean(dice):.4f} "
        f"IoU {np.mean(iou):.4f}; the labelled face alone {np.mean(iou_own):.4f}"
    )
    assert np.mean(iou_own) >= FLOOR_IOU and np.mean(iou) >= FLOOR_IOU_PLAIN
    evaluated = run_cli(
        "facecam-train", "evaluate", "--model", "facecam_face", "--data", str(data), "--split", "picked", timeout=300
    )
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(evaluated.stdout)
    assert figures["face_iou"] == round(float(np.mean(iou)), 4)
    assert figures["face_dice"] == round(float(np.mean(dice)), 4)
    assert figures["face_iou_labelled_face_only"] == round(float(np.mean(iou_own)), 4)

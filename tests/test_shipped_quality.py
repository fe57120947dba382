"""Slow tier: the shipped default model on real faces, through the CLI, against the quality floor."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA, run_cli

from facecam.training.metrics import face_dice_iou

LFW = SHARED_DATA / "lfw-parts"
FLOOR_IOU = 0.90
PHOTOS = 100

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (LFW / "test.txt").is_file(), reason="../shared/data/lfw-parts is not here"),
]


def test_default_model_meets_the_iou_floor_on_lfw_test(tmp_path):
    names = (LFW / "test.txt").read_text().split()
    picked = names[:: len(names) // PHOTOS][:PHOTOS]  # spread over the whole split
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in picked:
        shutil.copy(LFW / "images" / f"{name}.jpg", photos)
    result = run_cli(
        "facecam", "--images", str(photos), "--out", str(tmp_path / "masks"), "--mode", "mask", timeout=300
    )
    assert result.returncode == 0, result.stderr
    dice, iou = [], []
    for name in picked:
        pred = cv2.imread(str(tmp_path / "masks" / f"{name}.png"), cv2.IMREAD_UNCHANGED) > 127
        label = cv2.imread(str(LFW / "labels" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        d, i = face_dice_iou(pred.astype(np.uint8), label)  # the metric facecam-train evaluate reports
        dice.append(d[0])
        iou.append(i[0])
    print(
        f"default model on {len(picked)} lfw-parts/test photos via the CLI: Dice {np.mean(dice):.4f} "
        f"IoU {np.mean(iou):.4f}"
    )
    assert np.mean(iou) >= FLOOR_IOU

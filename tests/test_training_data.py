"""Training data: prepared layouts (sfa-skin), split rules, and the augmentations that must
change the picture and never the label. Split from test_training.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from facecam.errors import FacecamError
from facecam.training.dataset import read_pair


def test_augmentations_keep_image_and_label_aligned(prepared):
    from facecam.training.augment import AugmentConfig, build_train_transform, skin_distractors, webcam_framing

    image, label = read_pair(prepared, "0")
    rng = np.random.default_rng(0)
    pasted, pasted_label = skin_distractors(image, label, rng, count=(2, 2))
    changed = np.abs(pasted.astype(int) - image).sum(2) > 30
    assert changed.any() and ((pasted_label == label) | (pasted_label == 0)).all()  # patches are not face
    assert (pasted_label[changed] == 0).mean() > 0.8  # all but the feathered rim is relabelled
    assert (pasted_label[~changed] == label[~changed]).mean() > 0.97
    framed, framed_label = webcam_framing(image, label, rng, scale_range=(0.5, 0.5))
    assert framed.shape == image.shape and (framed_label == 1).sum() < (label == 1).sum() * 0.4
    transform = build_train_transform(AugmentConfig(size=48, skin_distractors=1.0), seed=0)
    out_image, out_label = transform(image, label)
    assert out_image.shape == (48, 48, 3) and out_label.shape == (48, 48) and out_image.dtype == np.uint8
    assert set(np.unique(out_label)) <= {0, 1, 2}


def test_skin_distractors_off_the_face_leave_the_face_untouched():
    from facecam.training.augment import skin_distractors

    rng = np.random.default_rng(1)
    image = np.full((192, 256, 3), 120, np.uint8)
    label = np.zeros((192, 256), np.uint8)
    cv2.ellipse(label, (50, 60), (14, 20), 0, 0, 360, 1, -1)  # a small face (framed), room beside it
    image[label == 1] = (150, 170, 210)
    pasted_any = False
    for _ in range(20):
        pasted, pasted_label = skin_distractors(image, label, rng, count=(2, 2), off_face=True)
        face = label == 1
        assert (pasted_label[face] == 1).all() and (pasted[face] == image[face]).all()
        pasted_any |= bool((pasted != image).any())
    assert pasted_any  # there was room for patches away from the face
    # without the option some patch lands on the face (a hand over it)
    over = [skin_distractors(image, label, rng, count=(3, 3))[1] for _ in range(20)]
    assert any((o[label == 1] == 0).any() for o in over)


def test_hard_light_changes_the_light_never_the_label(prepared):
    from facecam.training.augment import AugmentConfig, build_train_transform

    still = dict(size=48, hflip=False, color_jitter=0, coarse_dropout=0, scale_rotate=0, webcam_framing=0, blur_noise=0)
    image, label = read_pair(prepared, "0")
    plain_image, plain_label = build_train_transform(AugmentConfig(**still), seed=0)(image, label)
    relit = 0
    for seed in range(6):
        lit_image, lit_label = build_train_transform(AugmentConfig(**still, hard_light=1.0), seed=seed)(image, label)
        assert (lit_label == plain_label).all() and lit_image.dtype == np.uint8
        relit += np.abs(lit_image.astype(int) - plain_image).mean() > 3
    assert relit >= 5


def test_backlight_darkens_the_subject_lights_the_edges_never_the_label(prepared):
    from facecam.training.augment import AugmentConfig, build_train_transform
    from facecam.training.light import random_backlight

    grey = np.full((101, 101, 3), 128, np.uint8)
    for seed in range(8):
        lit = random_backlight(grey, np.random.default_rng(seed)).astype(float)
        assert lit[45:56, 45:56].mean() < min(100, lit[:5, :5].mean() - 25)  # a darker subject, a brighter edge
    still = dict(size=48, hflip=False, color_jitter=0, coarse_dropout=0, scale_rotate=0, webcam_framing=0, blur_noise=0)
    image, label = read_pair(prepared, "0")
    plain_image, plain_label = build_train_transform(AugmentConfig(**still), seed=0)(image, label)
    lit_image, lit_label = build_train_transform(AugmentConfig(**still, backlight=1.0), seed=0)(image, label)
    assert (lit_label == plain_label).all() and lit_image.dtype == np.uint8
    assert np.abs(lit_image.astype(int) - plain_image).mean() > 10


def test_low_res_blurs_the_picture_as_a_small_face_crop_never_the_label():
    from facecam.training.augment import LOW_RES_SCALE, AugmentConfig, build_train_transform

    # a fine checkerboard (2 px squares): at half its resolution or less it is a grey blur
    image = np.kron((np.indices((32, 32)).sum(0) % 2 * 255).astype(np.uint8), np.ones((2, 2), np.uint8))
    image = np.repeat(image[:, :, None], 3, 2)
    label = np.zeros((64, 64), np.uint8)
    label[16:48, 20:44] = 1
    still = dict(size=64, hflip=False, color_jitter=0, coarse_dropout=0, scale_rotate=0, webcam_framing=0, blur_noise=0)
    sharp_image, sharp_label = build_train_transform(AugmentConfig(**still), seed=0)(image, label)
    assert LOW_RES_SCALE[1] <= 0.5
    for seed in range(4):
        low_image, low_label = build_train_transform(AugmentConfig(**still, low_res=1.0), seed=seed)(image, label)
        assert (low_label == sharp_label).all() and low_image.shape == sharp_image.shape
        assert low_image.astype(float).std() < 0.5 * sharp_image.astype(float).std()  # the squares are gone
        assert abs(low_image.astype(float).mean() - sharp_image.mean()) < 20  # the same picture, blurred


def test_labels_outside_the_classes_are_reported(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "labels" / "a.png"), np.full((8, 8), 7, np.uint8))
    with pytest.raises(FacecamError, match="has value 7"):
        read_pair(tmp_path, "a")
    assert read_pair(tmp_path, "a", {7: 255})[1].max() == 255  # remapped to ignore: fine


def test_every_nth_and_the_holdout_rule():
    from facecam.training.splits import every_nth, holdout_val_train

    picked, rest = every_nth([str(i) for i in range(12)], 5)
    assert picked == ["4", "9"] and rest == [str(i) for i in range(12) if i not in (4, 9)]
    with pytest.raises(ValueError):
        every_nth(["a"], 1)
    names = [f"p{i}" for i in range(100)]
    shuffled = list(reversed(names))
    splits = holdout_val_train(shuffled)
    assert splits == holdout_val_train(names)  # the source's order does not matter
    ordered = sorted(names)
    assert splits["all"] == ordered
    assert splits["holdout"] == [n for i, n in enumerate(ordered) if i % 5 == 4] and len(splits["holdout"]) == 20
    assert len(splits["val"]) == 8 and len(splits["train"]) == 72
    assert not set(splits["holdout"]) & (set(splits["train"]) | set(splits["val"]))
    assert not set(splits["val"]) & set(splits["train"])
    assert sorted(splits["train"] + splits["val"] + splits["holdout"]) == ordered


def sfa_skin_mask(h: int = 96, w: int = 64) -> np.ndarray:
    """A synthetic SFA-style skin mask: a face with eye and mouth holes, a neck cut off by a
    beard, a stray skin speck; (H, W) uint8 0/1."""
    skin = np.zeros((h, w), np.uint8)
    cv2.ellipse(skin, (32, 36), (18, 24), 0, 0, 360, 1, -1)
    skin[30:33, 22:28] = skin[30:33, 36:42] = 0  # eyes
    skin[48:51, 27:37] = 0  # mouth
    skin[72:94, 22:42] = 1  # the neck, below a beard
    skin[2:4, 2:4] = 1  # a speck
    return skin


def test_sfa_face_label_fills_the_face_and_keeps_the_rest_apart():
    from facecam.training.sfa import sfa_face_label

    skin = sfa_skin_mask()
    label = sfa_face_label(skin > 0)
    face_area = np.zeros_like(skin)
    cv2.ellipse(face_area, (32, 36), (18, 24), 0, 0, 360, 1, -1)
    inner = cv2.erode(face_area, np.ones((7, 7), np.uint8)) > 0
    assert (label[inner] == 1).all()  # eyes and mouth filled
    assert label[31, 24] == 1 and label[49, 30] == 1
    assert (label[76:90, 26:38] == 255).all()  # the neck cut off by the beard: ignored, not taught "not face"
    assert (label[2:4, 2:4] == 254).all()  # a speck of skin: not face
    assert label[0, 63] == 254 and label[60, 5] == 254  # background
    outline = (cv2.dilate(face_area, np.ones((3, 3), np.uint8)) > 0) & ~inner
    assert (label[outline] != 254).all() and (label[outline] == 255).any()  # the ignore ring on the outline
    assert set(np.unique(sfa_face_label(skin > 0, ring=0))) == {1, 254, 255}  # the neck stays ignored
    assert (sfa_face_label(np.zeros((8, 8), bool)) == 254).all()
    # where the neck region is the largest, the face above it is still taken
    big_neck = skin.copy()
    big_neck[66:96, 12:52] = 1
    label = sfa_face_label(big_neck > 0)
    assert label[40, 32] == 1 and label[85, 32] == 255


def test_prepare_sfa_writes_the_layout_and_the_held_out_split(tmp_path):
    src = tmp_path / "sfa-skin"
    (src / "images").mkdir(parents=True)
    (src / "labels").mkdir()
    names = [f"sfa_{i}" for i in range(1, 13)]
    rng = np.random.default_rng(0)
    for name in names:
        cv2.imwrite(str(src / "images" / f"{name}.jpg"), rng.integers(0, 255, (96, 64, 3), dtype=np.uint8))
        cv2.imwrite(str(src / "labels" / f"{name}.png"), sfa_skin_mask())
    (src / "all.txt").write_text("".join(f"{n}\n" for n in names))
    out = tmp_path / "sfa"
    r = run_cli("facecam-train", "prepare", "sfa", "--src", str(src), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "9 train, 1 val, 2 held out" in r.stdout
    held = (out / "holdout.txt").read_text().split()
    assert held == [n for i, n in enumerate(sorted(names)) if i % 5 == 4]
    assert not set(held) & set((out / "train.txt").read_text().split() + (out / "val.txt").read_text().split())
    assert (out / "images" / "sfa_1.jpg").read_bytes() == (src / "images" / "sfa_1.jpg").read_bytes()
    image, label = read_pair(out, "sfa_1")
    assert image.shape == (96, 64, 3) and label[40, 32] == 1
    assert not list(tmp_path.glob(".sfa*"))  # no staging folder left
    assert_clean_error(run_cli("facecam-train", "prepare", "sfa", "--src", str(src), "--out", str(out)), "exists")
    # a mask with a value other than 0/1 stops the run by name and leaves nothing behind
    bad = sfa_skin_mask()
    bad[0, 0] = 2
    cv2.imwrite(str(src / "labels" / "sfa_7.png"), bad)
    out2 = tmp_path / "sfa2"
    assert_clean_error(run_cli("facecam-train", "prepare", "sfa", "--src", str(src), "--out", str(out2)), "sfa_7")
    assert not out2.exists() and not list(tmp_path.glob(".sfa2*"))
    (src / "labels" / "sfa_7.png").unlink()
    assert_clean_error(run_cli("facecam-train", "prepare", "sfa", "--src", str(src), "--out", str(out2)), "sfa_7")

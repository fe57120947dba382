"""Training side: CelebAMask-HQ preparation, the data loader, models, metrics, train -> evaluate -> resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from facecam.errors import FacecamError
from facecam.training.celebamask import PrepareConfig, prepare_celebamask
from facecam.training.dataset import FaceSegDataset, read_pair
from facecam.training.metrics import face_dice_iou, not_face_painted
from facecam.training.models import MODELS, build_model

PARTS_DRAWN = ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip", "mouth", "hair", "eye_g", "neck")


def make_celebamask(root: Path, count: int = 8, size: int = 64) -> Path:
    """A tiny CelebAMask-HQ in its exact layout: N.jpg photos at 2x the mask size, part masks per 2000-folder."""
    (root / "CelebA-HQ-img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        m = size // 2
        parts = {p: np.zeros((m, m), np.uint8) for p in PARTS_DRAWN}
        cx, cy = m // 2 + int(rng.integers(-3, 4)), m // 2
        cv2.ellipse(parts["skin"], (cx, cy), (m // 4, m // 3), 0, 0, 360, 255, -1)
        cv2.ellipse(parts["hair"], (cx, cy - m // 3), (m // 3, m // 6), 0, 0, 360, 255, -1)
        cv2.rectangle(parts["neck"], (cx - 4, cy + m // 3), (cx + 4, m - 1), 255, -1)
        cv2.circle(parts["l_eye"], (cx - 5, cy - 3), 2, 255, -1)
        cv2.circle(parts["r_eye"], (cx + 5, cy - 3), 2, 255, -1)
        cv2.rectangle(parts["eye_g"], (cx - 9, cy - 5), (cx + 9, cy - 1), 255, -1)  # glasses over the eyes
        cv2.line(parts["u_lip"], (cx - 4, cy + 6), (cx + 4, cy + 6), 255, 1)
        image = np.full((size, size, 3), (200, 180, 160), np.uint8)
        big = {p: cv2.resize(v, (size, size), interpolation=cv2.INTER_NEAREST) for p, v in parts.items()}
        image[big["skin"] > 0] = (120, 150, 210)
        image[big["hair"] > 0] = (30, 30, 40)
        image[big["eye_g"] > 0] = (20, 20, 20)
        cv2.imwrite(str(root / "CelebA-HQ-img" / f"{i}.jpg"), image)
        folder = root / "CelebAMask-HQ-mask-anno" / str(i // 2000)
        folder.mkdir(parents=True, exist_ok=True)
        for part, mask in parts.items():
            if mask.any():
                cv2.imwrite(str(folder / f"{i:05d}_{part}.png"), mask)
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    src = make_celebamask(tmp_path_factory.mktemp("celeba") / "CelebAMask-HQ")
    out = src.parent / "prepared"
    counts = prepare_celebamask(PrepareConfig(src=src, out=out, size=64, val_count=2), progress=False)
    assert counts == {"train": 6, "val": 2}
    return out


def test_prepare_celebamask_labels(prepared):
    image, label = read_pair(prepared, "0")
    assert image.shape == (64, 64, 3) and label.shape == (64, 64) and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1, 2}
    src = prepared.parent / "CelebAMask-HQ" / "CelebAMask-HQ-mask-anno" / "0"
    glasses = cv2.resize(cv2.imread(str(src / "00000_eye_g.png"), 0), (64, 64), interpolation=cv2.INTER_NEAREST) > 0
    skin = cv2.resize(cv2.imread(str(src / "00000_skin.png"), 0), (64, 64), interpolation=cv2.INTER_NEAREST) > 0
    hair = cv2.resize(cv2.imread(str(src / "00000_hair.png"), 0), (64, 64), interpolation=cv2.INTER_NEAREST) > 0
    assert (label[glasses] == 0).all()  # glasses are cut out of the face
    assert (label[skin & ~glasses & ~hair] == 1).all()
    assert (label[hair & ~glasses] == 2).all()
    neck = cv2.resize(cv2.imread(str(src / "00000_neck.png"), 0), (64, 64), interpolation=cv2.INTER_NEAREST) > 0
    assert (label[neck & ~skin] == 0).all()  # the neck is not face in CelebAMask-HQ's definition
    assert len((prepared / "train.txt").read_text().split()) == 6


def test_prepare_reports_broken_and_missing_files_by_name(tmp_path):
    src = make_celebamask(tmp_path / "c", count=3)
    (src / "CelebAMask-HQ-mask-anno" / "0" / "00001_skin.png").write_bytes(b"broken")
    with pytest.raises(FacecamError, match="00001_skin.png"):
        prepare_celebamask(PrepareConfig(src=src, out=tmp_path / "o", size=32, val_count=1), progress=False)
    for p in (src / "CelebAMask-HQ-mask-anno" / "0").glob("00002_*"):
        p.unlink()
    with pytest.raises(FacecamError, match="2.jpg has no face part"):
        prepare_celebamask(PrepareConfig(src=src, out=tmp_path / "o", size=32, val_count=1), progress=False)
    with pytest.raises(FacecamError, match="unknown CelebAMask-HQ part"):
        PrepareConfig(src=src, out=tmp_path / "o", face_parts=("beard",))


def test_prepare_cli_with_original_split_options(tmp_path):
    src = make_celebamask(tmp_path / "c", count=6)
    r = run_cli(
        "facecam-train",
        "prepare",
        "celebamask",
        "--src",
        str(src),
        "--out",
        str(tmp_path / "o"),
        "--limit",
        "5",
        "--val-count",
        "1",
        "--size",
        "32",
    )
    assert r.returncode == 0, r.stderr
    assert "4 train, 1 val" in r.stdout
    assert_clean_error(
        run_cli(
            "facecam-train", "prepare", "celebamask", "--src", str(tmp_path / "none"), "--out", str(tmp_path / "o2")
        ),
        "not found",
    )


def test_dataset_reads_layout_with_ignore_and_checks(tmp_path, prepared):
    ds = FaceSegDataset(prepared, "train")
    x, y = ds[0]
    assert x.shape == (3, 64, 64) and str(x.dtype) == "torch.float32" and str(y.dtype) == "torch.int64"
    (prepared / "labels" / "0.png").rename(tmp_path / "held.png")
    try:
        with pytest.raises(FacecamError, match="0.png"):
            FaceSegDataset(prepared, "all")
    finally:
        (tmp_path / "held.png").rename(prepared / "labels" / "0.png")
    with pytest.raises(FacecamError, match="splits here"):
        FaceSegDataset(prepared, "nosuchsplit")


def test_size_mismatch_is_reported(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((20, 20, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "labels" / "a.png"), np.zeros((10, 20), np.uint8))
    with pytest.raises(FacecamError, match="size mismatch for a"):
        read_pair(tmp_path, "a")


def test_metrics_known_answers():
    pred = np.array([[1, 1, 0, 0]] * 4, bool)
    target = np.array([[1, 0, 0, 0]] * 4)
    dice, iou = face_dice_iou(pred, target)
    assert dice[0] == pytest.approx(2 * 4 / (8 + 4)) and iou[0] == pytest.approx(4 / 8)
    target_ignored = target.copy()
    target_ignored[:, 1] = 255  # the disputed column is ignored: perfect
    assert face_dice_iou(pred, target_ignored)[0][0] == pytest.approx(1.0)
    empty = np.zeros((2, 3, 3), bool)
    assert face_dice_iou(empty, empty)[1] == pytest.approx([1.0, 1.0])
    assert face_dice_iou(np.ones((3, 3), bool), np.full((3, 3), 2), face_classes=(1, 2))[1][0] == 1.0
    # not-face pixels painted: column 1 is background (0) painted face; 254 counts as not-face, 255 not at all
    assert not_face_painted(pred, target) == (4, 12)
    target_mixed = target.copy()
    target_mixed[:, 2], target_mixed[:, 3] = 254, 255
    assert not_face_painted(pred, target_mixed) == (4, 8)


def test_models_build_without_downloads_and_unknown_name():
    import torch

    for name in MODELS:
        with torch.no_grad():
            out = build_model(name, 3).eval()(torch.zeros(1, 3, 64, 64))
        assert out.shape == (1, 3, 64, 64), name
    with pytest.raises(ValueError, match="valid models: deeplabv3_resnet50, unet_resnet34"):
        build_model("segformer")


def test_train_evaluate_resume_export(prepared, tmp_path):
    run = tmp_path / "run"
    common = (
        "--data",
        str(prepared),
        "--model",
        "fast_unet",
        "--batch-size",
        "2",
        "--size",
        "64",
        "--workers",
        "0",
        "--out",
        str(run),
    )
    r = run_cli("facecam-train", *common, "--epochs", "1", timeout=300)
    assert r.returncode == 0, r.stderr
    assert {"best.pt", "last.pt", "log.csv", "curves.png"} <= {p.name for p in run.iterdir()}
    assert_clean_error(run_cli("facecam-train", *common, "--epochs", "2"), "--resume")
    r = run_cli("facecam-train", *common, "--epochs", "2", "--resume", timeout=300)
    assert r.returncode == 0, r.stderr
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,train_loss,val_loss,val_dice,val_iou") and len(log) == 3
    r = run_cli(
        "facecam-train", "evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(prepared), "--split", "val"
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["images"] == 2 and 0 <= result["face_iou"] <= result["face_dice"] <= 1
    r = run_cli("facecam-export", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stderr


def test_train_bad_input(prepared, tmp_path):
    assert_clean_error(
        run_cli("facecam-train", "--data", str(prepared), "--out", str(tmp_path / "r"), "--model", "resnet9000"),
        "invalid choice",
    )
    assert_clean_error(
        run_cli("facecam-train", "--data", str(tmp_path), "--out", str(tmp_path / "r")), "not a facecam data folder"
    )
    assert_clean_error(
        run_cli("facecam-train", "--data", str(prepared), "--out", str(tmp_path / "r"), "--lr", "-1"), "must be > 0"
    )
    assert_clean_error(
        run_cli("facecam-train", "evaluate", "--checkpoint", str(tmp_path / "x.pt"), "--data", str(prepared)),
        "does not exist",
    )


def test_distributed_two_cpu_processes_on_gloo(prepared, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29517",
            "-m",
            "facecam.training.cli",
            "--data",
            str(prepared),
            "--model",
            "fast_unet",
            "--epochs",
            "1",
            "--batch-size",
            "2",
            "--size",
            "64",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (run / "best.pt").is_file() and len((run / "log.csv").read_text().splitlines()) == 2


def test_data_spec_label_map_and_joined_splits(prepared):
    from facecam.training.dataset import parse_data_spec, read_split

    assert parse_data_spec("/data/masked:0=254,2=0") == (Path("/data/masked"), {0: 254, 2: 0})
    assert parse_data_spec("/data/plain") == (Path("/data/plain"), {})
    with pytest.raises(FacecamError, match="0..255"):
        parse_data_spec("/d:0=300")
    assert len(read_split(prepared, "train+val")) == 8
    ds = FaceSegDataset(prepared, "val", label_map={0: 254})
    assert 0 not in set(np.unique(ds[0][1].numpy()))


def test_not_face_label_pushes_only_away_from_face():
    import torch

    from facecam.training.engine import segmentation_loss

    target = torch.full((1, 4, 4), 254)
    as_hair = torch.zeros(1, 3, 4, 4)
    as_hair[:, 2] = 5  # confidently hair: fine for a "not face" pixel
    as_face = torch.zeros(1, 3, 4, 4)
    as_face[:, 1] = 5
    assert segmentation_loss(as_hair, target, (1,)) < 0.1
    assert segmentation_loss(as_face, target, (1,)) > 2
    ignored = torch.full((1, 4, 4), 255)
    assert segmentation_loss(as_face, ignored, (1,)) < 0.6  # only the Dice term's smoothing remains


def test_hole_weight_charges_a_pocket_inside_the_face_and_not_a_miss_at_its_edge():
    import torch

    from facecam.training.engine import INSIDE_MARGIN, face_inside, segmentation_loss

    target = torch.zeros(1, 64, 64, dtype=torch.long)
    target[:, 10:50, 10:50] = 1
    inside = face_inside((target == 1).float())
    side = 40 - 2 * INSIDE_MARGIN
    assert inside.sum() == side * side and inside[0, 10 + INSIDE_MARGIN, 10 + INSIDE_MARGIN] == 1
    right = torch.zeros(1, 3, 64, 64)
    right[:, 1] = 8 * (target[0] == 1).float() - 4  # face where labelled, background elsewhere
    pocket, edge = right.clone(), right.clone()
    pocket[:, 1, 28:32, 28:32] = -4  # a hole in the middle of the face
    edge[:, 1, 10:14, 10:14] = -4  # the same number of pixels missed at its corner

    def extra(logits, weight):
        return float(segmentation_loss(logits, target, (1,), weight) - segmentation_loss(right, target, (1,), weight))

    assert extra(pocket, 0) == pytest.approx(extra(edge, 0), rel=1e-4)  # plain loss: the same miss
    assert extra(pocket, 2) > 2.5 * extra(edge, 2)  # the hole term: the pocket costs more
    assert extra(edge, 2) == pytest.approx(extra(edge, 0), rel=1e-4)  # the edge is not its business


def test_a_face_cut_by_the_image_border_keeps_its_inside_there():
    import torch

    from facecam.training.engine import INSIDE_MARGIN, face_inside

    face = torch.zeros(1, 32, 32)
    face[:, :, :20] = 1  # runs off the left, top and bottom edges
    inside = face_inside(face)
    assert inside[0, :, : 20 - INSIDE_MARGIN].all() and not inside[0, :, 20 - INSIDE_MARGIN :].any()


def test_broken_data_set_is_one_clean_line_even_from_a_worker(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    for name, label_size in (("a", 32), ("b", 20)):  # b's label does not match its image
        cv2.imwrite(str(data / "images" / f"{name}.jpg"), np.zeros((32, 32, 3), np.uint8))
        cv2.imwrite(str(data / "labels" / f"{name}.png"), np.zeros((label_size, label_size), np.uint8))
    (data / "train.txt").write_text("a\nb\n")
    (data / "val.txt").write_text("a\n")
    args = ("--data", str(data), "--model", "fast_unet", "--size", "32", "--batch-size", "2", "--epochs", "1")
    assert_clean_error(
        run_cli("facecam-train", *args, "--workers", "1", "--out", str(tmp_path / "r1")), "size mismatch for b"
    )
    (data / "labels" / "b.png").unlink()
    assert_clean_error(
        run_cli("facecam-train", *args, "--workers", "0", "--out", str(tmp_path / "r2")), "b.png is missing"
    )


def test_resume_with_another_model_is_refused(prepared, tmp_path):
    run = tmp_path / "run"
    common = ("--data", str(prepared), "--batch-size", "2", "--size", "64", "--workers", "0", "--out", str(run))
    assert run_cli("facecam-train", *common, "--model", "fast_unet", "--epochs", "1").returncode == 0
    before = (run / "last.pt").read_bytes()
    assert_clean_error(
        run_cli("facecam-train", *common, "--model", "lraspp_mobilenet_v3_large", "--epochs", "2", "--resume"),
        "is a fast_unet run",
    )
    assert (run / "last.pt").read_bytes() == before


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


def test_distributed_run_stops_every_rank_when_rank0_fails(prepared, tmp_path):
    run = tmp_path / "ddp"
    (run / "best.pt").mkdir(parents=True)  # rank 0, the one that writes, cannot save
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519"]
    argv += ["-m", "facecam.training.cli", "--data", str(prepared), "--model", "fast_unet", "--epochs", "2"]
    argv += ["--batch-size", "2", "--size", "64", "--workers", "0", "--device", "cpu", "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env)  # no rank waits forever
    assert r.returncode != 0
    assert "facecam: error: cannot write checkpoint" in r.stderr  # rank 0 says why
    # rank 1 either notices first ("rank 1: another process of this run stopped") or torchrun
    # stops it; never a bug report about a closed connection
    assert "unexpected error" not in r.stderr


def test_a_checkpoint_that_cannot_be_written_is_a_clear_error(prepared, tmp_path):
    run = tmp_path / "run"
    (run / "best.pt").mkdir(parents=True)  # a folder in the way, as a full disk would also stop it
    common = ("--data", str(prepared), "--model", "fast_unet", "--batch-size", "2", "--size", "64", "--workers", "0")
    result = run_cli("facecam-train", *common, "--epochs", "1", "--out", str(run), timeout=300)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert last.startswith("facecam: error: cannot write checkpoint") and "best.pt" in last, result.stderr
    assert not list(run.glob("*.tmp"))


def test_labels_outside_the_classes_are_reported(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "labels" / "a.png"), np.full((8, 8), 7, np.uint8))
    with pytest.raises(FacecamError, match="has value 7"):
        read_pair(tmp_path, "a")
    assert read_pair(tmp_path, "a", {7: 255})[1].max() == 255  # remapped to ignore: fine


def test_resume_refuses_changed_settings(prepared, tmp_path):
    run = tmp_path / "run"
    common = ("--data", str(prepared), "--model", "fast_unet", "--batch-size", "2", "--workers", "0", "--out", str(run))
    assert run_cli("facecam-train", *common, "--size", "64", "--epochs", "1").returncode == 0
    assert_clean_error(run_cli("facecam-train", *common, "--size", "96", "--epochs", "2", "--resume"), "size=64")
    assert_clean_error(
        run_cli("facecam-train", *common, "--size", "64", "--width", "8", "--epochs", "2", "--resume"), "model_kwargs"
    )


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


def test_darken_is_deterministic_and_darker():
    from facecam.training.light import LIGHTS, darken, lights_for

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert darken(image, "none") is image
    for light in LIGHTS:
        out = darken(image, light)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert (out == darken(image.copy(), light)).all()  # the same photo gives the same copy
        assert not (out == darken(image[::-1].copy(), light)[::-1]).all()  # noise differs between photos
    assert darken(image, "very_dim").mean() < darken(image, "dim").mean() < image.mean()
    grey = np.full((101, 101, 3), 128, np.uint8)
    backlit = darken(grey, "backlit").astype(float)
    assert backlit[45:56, 45:56].mean() < 60 < 170 < backlit[:5, :5].mean()  # a dark subject, a bright edge
    assert lights_for("all") == ("none", *LIGHTS) and lights_for("dim") == ("dim",)
    with pytest.raises(ValueError):
        darken(image, "moonlight")


def test_iou_distribution_known_answers():
    from facecam.training.metrics import iou_distribution

    spread = iou_distribution(np.array([0.5, 0.7, 0.9, 0.95, 1.0]))
    assert spread["mean"] == pytest.approx(0.81)
    assert spread["p10"] == pytest.approx(0.58)
    assert spread["share_under_0.80"] == pytest.approx(0.4)


def test_evaluate_a_model_through_the_runtime_in_every_light(prepared, tmp_path, tiny_model):
    r = run_cli(
        "facecam-train", "evaluate", "--model", str(tiny_model), "--data", str(prepared), "--split", "val",
        "--light", "all",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["images"] == 2 and result["model"] == str(tiny_model) and result["light"] == "all"
    assert list(result["by_light"]) == ["none", "dim", "very_dim", "backlit"]
    for figures in result["by_light"].values():
        assert 0 <= figures["face_iou_p10"] <= 1 and 0 <= figures["share_iou_under_0.80"] <= 1
        assert 0 <= figures["face_iou"] <= figures["face_dice"] <= 1
    r = run_cli(
        "facecam-train",
        "evaluate",
        "--model",
        str(tiny_model),
        "--data",
        str(prepared),
        "--split",
        "val",
        "--light",
        "dim",
    )
    assert r.returncode == 0, r.stderr
    single = json.loads(r.stdout)
    assert single["light"] == "dim" and "face_iou_p10" in single and "by_light" not in single
    assert_clean_error(run_cli("facecam-train", "evaluate", "--data", str(prepared)), "--checkpoint", "--model")
    assert_clean_error(
        run_cli("facecam-train", "evaluate", "--model", str(tiny_model), "--data", str(prepared), "--light", "x"),
        "--light",
    )


@pytest.fixture(scope="module")
def sample_faces(tmp_path_factory) -> Path:
    """Frames of the sample clip in the facecam layout, labelled face in a box around the face's
    place (rough on purpose: the figures below are compared with each other, not with a floor)."""
    import itertools

    import facecam

    root = tmp_path_factory.mktemp("sample_faces")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    names = []
    for i, frame in enumerate(itertools.islice(facecam.video_frames(facecam.SAMPLE_VIDEO), 0, 60, 15)):
        small = cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)
        label = np.zeros(small.shape[:2], np.uint8)
        label[25:105, 155 - 22 * i : 225 - 22 * i] = 1  # the astronaut's face drifts left
        label[104:110] = 255  # the chin's edge: left out
        cv2.imwrite(str(root / "images" / f"f{i}.jpg"), small)
        cv2.imwrite(str(root / "labels" / f"f{i}.png"), label)
        names.append(f"f{i}")
    (root / "all.txt").write_text("\n".join(names) + "\n")
    return root


def test_one_definition_of_face_checkpoint_export_and_command_agree(sample_faces, tmp_path):
    """evaluate --checkpoint, evaluate --model on its export, and the command's own mask PNGs scored
    with the same metric give the same figures to 4 decimals: one definition of face, one path.
    The model is the shipped one, recovered into a checkpoint (facecam-train recover)."""
    from facecam.export.onnx_export import export_onnx
    from facecam.training.checkpoint import save_checkpoint
    from facecam.training.recover import recover_checkpoint

    ckpt, onnx = tmp_path / "shipped.pt", tmp_path / "shipped.onnx"
    shipped = Path(__file__).resolve().parents[1] / "weights" / "facecam_face.onnx"
    save_checkpoint(recover_checkpoint(shipped, sample_faces, "all"), ckpt)
    export_onnx(ckpt, onnx)
    common = ("--data", str(sample_faces), "--split", "all")
    figures = []
    for which in (("--checkpoint", str(ckpt), "--device", "cpu"), ("--model", str(onnx))):
        r = run_cli("facecam-train", "evaluate", *which, *common, timeout=300)
        assert r.returncode == 0, r.stderr
        figures.append(json.loads(r.stdout))
    masks = tmp_path / "masks"
    r = run_cli("facecam", "--images", str(sample_faces / "images"), "--out", str(masks), "--mode", "mask",
                "--model", str(onnx), "--provider", "cpu")  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = FaceSegDataset(sample_faces, "all").names
    ious = [
        face_dice_iou(cv2.imread(str(masks / f"{n}.png"), cv2.IMREAD_UNCHANGED) >= 128, read_pair(sample_faces, n)[1])
        for n in names
    ]
    by_checkpoint, by_model = figures
    assert 0.3 < by_model["face_iou"] < 0.99, "the rough labels should neither match nor miss the face"
    for key in ("face_dice", "face_iou", "face_iou_p10", "not_face_painted"):
        assert by_checkpoint[key] == by_model[key], key
    assert round(float(np.mean([i[1][0] for i in ious])), 4) == by_model["face_iou"]


def test_evaluate_a_checkpoint_in_every_light(prepared, tmp_path):
    from conftest import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    args = ("facecam-train", "evaluate", "--checkpoint", str(ckpt), "--data", str(prepared), "--split", "val")
    r = run_cli(*args, "--light", "all")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["checkpoint"] == str(ckpt) and "runtime" in result["path"]
    assert list(result["by_light"]) == ["none", "dim", "very_dim", "backlit"]
    plain = json.loads(run_cli(*args).stdout)
    assert plain["light"] == "none" and plain["face_iou"] == result["by_light"]["none"]["face_iou"]
    assert {"face_iou_p10", "share_iou_under_0.80", "not_face_painted"} <= set(plain)


def test_touching_labelled_face_drops_only_the_blobs_away_from_the_labelled_face():
    from facecam.training.metrics import face_dice_iou, touching_labelled_face

    label = np.zeros((40, 60), np.uint8)
    label[10:30, 5:25] = 1  # the person the photo is about
    label[0:5, 0:5] = 255
    face = np.zeros((40, 60), bool)
    face[12:32, 5:25] = True  # the labelled face, a little low
    face[10:30, 40:55] = True  # a neighbour's face, labelled background
    own = touching_labelled_face(face, label)
    assert own[12:32, 5:25].all() and not own[:, 30:].any()
    assert face_dice_iou(own, label)[1][0] > face_dice_iou(face, label)[1][0]
    assert not touching_labelled_face(face, np.zeros_like(label)).any()  # no labelled face: nothing is its


def test_resuming_with_another_hole_weight_is_refused(tmp_path):
    from facecam.errors import FacecamError
    from facecam.training.train import TrainConfig, check_resumable

    cfg = TrainConfig(data=["d"], out=str(tmp_path), model="fast_unet", hole_weight=0.0)
    state = {"model_name": "fast_unet", "config": {"hole_weight": 2.0}}
    with pytest.raises(FacecamError, match="hole_weight=2.0"):
        check_resumable(state, cfg, tmp_path / "last.pt")

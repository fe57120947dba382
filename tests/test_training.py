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
from conftest import assert_clean_error, make_celebamask, run_cli

from facecam.errors import FacecamError
from facecam.training.celebamask import PrepareConfig, prepare_celebamask
from facecam.training.dataset import FaceSegDataset, read_pair
from facecam.training.metrics import face_dice_iou, not_face_painted
from facecam.training.models import MODELS, build_model


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


def test_resume_refuses_changed_settings(prepared, tmp_path):
    run = tmp_path / "run"
    common = ("--data", str(prepared), "--model", "fast_unet", "--batch-size", "2", "--workers", "0", "--out", str(run))
    assert run_cli("facecam-train", *common, "--size", "64", "--epochs", "1").returncode == 0
    assert_clean_error(run_cli("facecam-train", *common, "--size", "96", "--epochs", "2", "--resume"), "size=64")
    assert_clean_error(
        run_cli("facecam-train", *common, "--size", "64", "--width", "8", "--epochs", "2", "--resume"), "model_kwargs"
    )


def test_resuming_with_another_hole_weight_is_refused(tmp_path):
    from facecam.errors import FacecamError
    from facecam.training.train import TrainConfig, check_resumable

    cfg = TrainConfig(data=["d"], out=str(tmp_path), model="fast_unet", hole_weight=0.0)
    state = {"model_name": "fast_unet", "config": {"hole_weight": 2.0}}
    with pytest.raises(FacecamError, match="hole_weight=2.0"):
        check_resumable(state, cfg, tmp_path / "last.pt")

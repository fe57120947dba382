"""facecam-train evaluate: every photo through the runtime's own path, in every light; the
metrics it reports (IoU spread, the labelled face alone). Split from test_training.py."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from facecam.training.dataset import FaceSegDataset, read_pair
from facecam.training.metrics import face_dice_iou


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


def test_the_error_split_puts_each_wrong_pixel_where_it_lies():
    from facecam.scripts.face_error_split import NEAR, photo_errors

    labels = np.zeros((100, 100), np.uint8)
    labels[30:60, 30:60] = 1  # the labelled face
    labels[20:30, 30:60] = 2  # its hair
    painted = np.zeros((100, 100), bool)
    painted[35:60, 30:60] = True  # five rows of the face's top missed
    painted[20:25, 30:60] = True  # hair
    painted[60 : 60 + NEAR, 30:60] = True  # a neck within NEAR px
    painted[80:90, 80:90] = True  # another face, far off
    errors, union, iou = photo_errors(painted, labels)
    counts = {kind: int(where.sum()) for kind, where in errors.items()}
    assert counts == {"missed": 150, "painted_hair": 150, "painted_near": 30 * NEAR, "painted_far": 100}
    assert union == 900 + 150 + 30 * NEAR + 100 and iou == pytest.approx(750 / union)


def test_the_error_split_script_on_a_small_set(prepared, tiny_model, tmp_path, capsys):
    from facecam.scripts.face_error_split import main

    shown = tmp_path / "far.png"
    assert main([str(prepared), "val", str(tiny_model), "--show", str(shown)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 2 and 0 <= report["mean_iou"] <= 1
    assert set(report) == {"photos", "mean_iou", "missed", "painted_hair", "painted_near", "painted_far"}
    assert cv2.imread(str(shown)) is not None
    assert main([str(prepared), "nosuch"]) == 2
    assert "nosuch.txt does not exist" in capsys.readouterr().err
    assert main([str(prepared), "val", str(tiny_model), "--show", str(tmp_path / "no" / "far.png")]) == 2
    assert "could not write" in capsys.readouterr().err


def test_a_photo_and_its_label_turn_together():
    from facecam.scripts.tilted_faces import face_iou, turned

    image = np.zeros((60, 60, 3), np.uint8)
    labels = np.zeros((60, 60), np.uint8)
    labels[5:15, 20:40] = 1  # a face at the top
    image[labels == 1] = 255
    picture, face, inside = turned(image, labels, 90)  # counter-clockwise: the top goes left
    assert face[20:40, 5:15].sum() == face.sum() == 200  # exactly: turned about the middle pixel centre
    assert (picture[..., 0][face] == 255).all()
    assert inside.all()  # a square turned a quarter: no corner brought in
    assert not turned(image, labels, 45)[2].all()
    assert face_iou(face, face) == 1.0 and face_iou(face, np.zeros_like(face)) == 0.0
    assert face_iou(np.zeros_like(face), np.zeros_like(face)) == 1.0


def test_the_tilted_faces_script_on_a_small_set(prepared, tiny_model, capsys):
    from facecam.scripts.tilted_faces import main

    assert main([str(prepared), "val", "--angles", "0,90", "--model", str(tiny_model)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["angle"] for line in lines] == [0.0, 90.0] and all(line["photos"] == 2 for line in lines)
    assert all(0 <= line["mean_iou"] <= 1 and 0 <= line["mostly_missed"] <= 1 for line in lines)
    assert main([str(prepared), "val", "--angles", "0,ninety"]) == 2
    assert "--angles must be numbers" in capsys.readouterr().err

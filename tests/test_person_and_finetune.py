"""Person masks -> training labels (``facecam-train prepare person``) and fine-tuning with ``--init``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_clean_error, make_celebamask, run_cli

from facecam.training.celebamask import PrepareConfig, prepare_celebamask
from facecam.training.dataset import LABEL_IGNORE, LABEL_NOT_FACE
from facecam.training.person import LABEL_FACE, head_zones, person_photo_labels, top_bands


def standing_person(h: int = 200, w: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """A whole standing figure (head circle over a body) and the teacher's face probability on its head."""
    person = np.zeros((h, w), np.uint8)
    cv2.circle(person, (60, 30), 12, 1, -1)
    cv2.rectangle(person, (40, 42), (80, 180), 1, -1)
    face = np.zeros((h, w), np.float32)
    cv2.circle(face, (60, 30), 11, 0.9, -1)
    return person > 0, face


def test_body_is_not_face_sure_face_is_face_the_rest_is_ignored():
    person, face = standing_person()
    label = person_photo_labels(person, face, face)
    assert label[5, 5] == 0 and label[195, 110] == 0  # far from the person
    assert label[30, 60] == LABEL_FACE  # the core of a head the teacher is sure of
    assert label[30, 51] == LABEL_FACE and label[30, 49] == LABEL_IGNORE  # the face's rim is not claimed
    assert label[45, 60] == LABEL_IGNORE  # the neck, below the chin
    assert (label[120:175, 45:75] == LABEL_NOT_FACE).all()  # the body
    assert label[100, 82] == LABEL_IGNORE  # the ragged edge of an automatic mask: no claim either way
    assert set(np.unique(label)) == {0, LABEL_FACE, LABEL_NOT_FACE, LABEL_IGNORE}


def test_unsure_or_wide_only_faces_are_ignored_not_labelled():
    person, face = standing_person()
    unsure = face * 0.5  # above MAYBE_FACE, below SURE_FACE
    label = person_photo_labels(person, unsure, unsure)
    assert label[30, 60] == LABEL_IGNORE and (label[120:175, 45:75] == LABEL_NOT_FACE).all()
    label = person_photo_labels(person, np.zeros_like(face), face)  # seen only at twice the size
    assert label[30, 60] == LABEL_IGNORE


def test_teacher_over_painting_below_the_neck_becomes_not_face():
    person, face = standing_person()
    overpainted = face.copy()
    overpainted[42:150, 45:75] = 0.9  # the teacher also painted a skin-coloured dress
    label = person_photo_labels(person, overpainted, overpainted)
    assert label[30, 60] == LABEL_FACE
    assert (label[110:150, 45:75] == LABEL_NOT_FACE).all()


def test_confident_teacher_blobs_low_on_a_person_are_not_faces():
    person, face = standing_person()
    coat = np.zeros_like(face)
    cv2.circle(coat, (60, 140), 11, 0.9, -1)  # a face-like blob on the coat of a whole standing person
    label = person_photo_labels(person, coat, coat)
    assert LABEL_FACE not in label
    assert label[30, 60] == LABEL_IGNORE  # their real head: the top band


def test_a_head_the_teacher_missed_stays_ignored():
    person, _ = standing_person()
    no_face = np.zeros(person.shape, np.float32)
    bands = top_bands(person)
    assert bands[20:40, 50:70].all() and not bands[150].any()  # top fifth of a whole person
    label = person_photo_labels(person, no_face, no_face)
    assert (label[20:40, 50:70] == LABEL_IGNORE).all()
    cropped = person.copy()
    cropped[180:, 40:81] = True  # the same person cut off by the image's bottom edge: a deeper band
    assert top_bands(cropped)[:, 60].sum() > bands[:, 60].sum()


def test_head_zone_is_sized_by_the_head_not_the_blob():
    blob = np.zeros((300, 300), bool)
    cv2.circle(blob.view(np.uint8), (150, 40), 15, 1, -1)
    blob[55:290, 135:165] = True  # a long tail below the head (dress, arm)
    zone = head_zones(blob)
    ys, xs = np.nonzero(zone.any(axis=1))[0], np.nonzero(zone.any(axis=0))[0]
    assert ys.min() < 25 and 80 < ys.max() < 100  # from above the head (top 25) to two head widths down
    assert 105 < xs.min() < 120 and 180 < xs.max() < 195  # 1.25 head widths (31 px) each side


def make_person_set(root: Path, count: int = 4) -> Path:
    """Photos of a standing figure with 0/1 person masks and an all.txt, like ../shared/data/person."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    person, _ = standing_person()
    for i in range(count):
        image = np.full((200, 120, 3), (90, 140, 60), np.uint8)
        image[person] = (60, 90, 200)
        cv2.imwrite(str(root / "images" / f"{i}.jpg"), image)
        cv2.imwrite(str(root / "labels" / f"{i}.png"), person.astype(np.uint8))
    (root / "all.txt").write_text("".join(f"{i}\n" for i in range(count)))
    return root


def test_prepare_person_then_fine_tune_with_init(tmp_path, tiny_model):
    src = make_person_set(tmp_path / "person")
    out = tmp_path / "person-neg"
    prepare = ("facecam-train", "prepare", "person", "--src", str(src), "--out", str(out), "--teacher", str(tiny_model))
    r = run_cli(*prepare, "--holdout", "1")
    assert r.returncode == 0, r.stderr
    assert "3 train, 1 held out" in r.stdout
    assert len((out / "train.txt").read_text().split()) == 3 and len((out / "holdout.txt").read_text().split()) == 1
    for label_path in (out / "labels").iterdir():
        assert set(np.unique(cv2.imread(str(label_path), 0))) <= {0, LABEL_FACE, LABEL_NOT_FACE, LABEL_IGNORE}
    assert_clean_error(run_cli(*prepare), "already exists")

    faces = tmp_path / "faces"
    prepare_celebamask(
        PrepareConfig(src=make_celebamask(tmp_path / "celeba"), out=faces, size=64, val_count=2), progress=False
    )
    common = ("--data", str(faces), str(out), "--model", "fast_unet", "--batch-size", "2", "--size", "64")
    common += ("--workers", "0", "--epochs", "1", "--lighting", "1", "--hard-light", "1", "--backlight", "1")
    common += ("--low-res", "1")
    assert run_cli("facecam-train", *common, "--out", str(tmp_path / "base"), timeout=300).returncode == 0
    base = tmp_path / "base" / "best.pt"
    r = run_cli("facecam-train", *common, "--init", str(base), "--out", str(tmp_path / "tuned"), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "starting from the weights of" in r.stderr
    from facecam.training.checkpoint import load_checkpoint

    saved = load_checkpoint(tmp_path / "tuned" / "last.pt")["config"]["augment"]
    assert saved["hard_light"] == 1.0 and saved["backlight"] == 1.0 and saved["low_res"] == 1.0
    assert_clean_error(
        run_cli("facecam-train", *common, "--width", "8", "--init", str(base), "--out", str(tmp_path / "w8")),
        "--init",
    )
    assert not (tmp_path / "w8" / "last.pt").exists()
    assert_clean_error(
        run_cli("facecam-train", *common, "--init", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x")),
        "not a checkpoint file",
    )
    assert_clean_error(
        run_cli("facecam-train", *common, "--init", str(base), "--resume", "--out", str(tmp_path / "base")),
        "pass only one",
    )
    tuned, blended = tmp_path / "tuned" / "last.pt", tmp_path / "blend.pt"
    blend = ("facecam-train", "blend", "--base", str(base), "--tuned", str(tuned), "--data", str(faces))
    r = run_cli(*blend, "--alpha", "0.7", "--out", str(blended), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "val face Dice" in r.stdout
    r = run_cli("facecam-export", "--checkpoint", str(blended), "--out", str(tmp_path / "blend.onnx"))
    assert r.returncode == 0, r.stderr
    assert_clean_error(run_cli(*blend, "--alpha", "0.5", "--out", str(blended)), "already exists")
    assert_clean_error(run_cli(*blend, "--alpha", "1.5", "--out", str(tmp_path / "b2.pt")), "1.5")


def test_blend_is_a_weighted_mean_of_matching_checkpoints(tmp_path):
    from conftest import tiny_checkpoint

    from facecam.errors import FacecamError
    from facecam.training.checkpoint import blend_checkpoints, load_checkpoint

    a = load_checkpoint(tiny_checkpoint(tmp_path / "a.pt", seed=0))
    b = load_checkpoint(tiny_checkpoint(tmp_path / "b.pt", seed=1))
    name = next(k for k, v in a["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    for alpha in (0.0, 0.3, 1.0):
        mixed = blend_checkpoints(a, b, alpha)["state_dict"][name]
        expected = (1 - alpha) * a["state_dict"][name] + alpha * b["state_dict"][name]
        assert np.allclose(mixed.numpy(), expected.numpy())
    assert "metrics" not in blend_checkpoints(a, b, 0.5)  # a blend's figures belong to neither parent
    wider = load_checkpoint(tiny_checkpoint(tmp_path / "w.pt", width=8))
    with pytest.raises(FacecamError, match="different architectures"):
        blend_checkpoints(a, wider, 0.5)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("missing-src", "not a facecam data folder"),
        ("no-split", "split file"),
        ("holdout-all", "leaves no training photos"),
        ("bad-teacher", "nope"),
        ("missing-mask", "3.png is missing"),
    ],
)
def test_prepare_person_bad_input_is_one_line_and_leaves_nothing(tmp_path, tiny_model, bad, message):
    src = tmp_path / "missing" if bad == "missing-src" else make_person_set(tmp_path / "p")
    teacher, extra = str(tiny_model), ()
    if bad == "no-split":
        (src / "all.txt").unlink()
    elif bad == "holdout-all":
        extra = ("--holdout", "4")
    elif bad == "bad-teacher":
        teacher = "nope"
    elif bad == "missing-mask":
        (src / "labels" / "3.png").unlink()
    out = tmp_path / "o"
    args = ("prepare", "person", "--src", str(src), "--out", str(out), "--teacher", teacher, *extra)
    assert_clean_error(run_cli("facecam-train", *args), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["p"] if bad != "missing-src" else [])

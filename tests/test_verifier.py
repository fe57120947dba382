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


def test_grey_crops_go_to_the_grey_twin_and_colour_ones_to_the_colour_model():
    from facecam.realtime.segmenter import WEIGHTS_DIR, available_models
    from facecam.realtime.verifier import Verifier, grey_twin_path, is_grey

    rng = np.random.default_rng(3)
    colour = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    grey = [cv2.cvtColor(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) for c in colour]
    assert not any(map(is_grey, colour)) and all(map(is_grey, grey))
    both = Verifier()  # the shipped verifier and its twin
    assert both.grey_twin is not None and both.grey_twin.path == grey_twin_path(both.path)
    alone = Verifier(twin=False)
    twin = Verifier(grey_twin_path(both.path), twin=False)
    mixed = both.scores([colour[0], grey[1], colour[2], grey[0]])
    np.testing.assert_allclose(mixed[[0, 2]], alone.scores([colour[0], colour[2]]), atol=1e-6)
    np.testing.assert_allclose(mixed[[1, 3]], twin.scores([grey[1], grey[0]]), atol=1e-6)
    assert not np.allclose(twin.scores(grey), alone.scores(grey), atol=1e-3)  # the twin answers otherwise
    assert "facecam_verifier_grey" not in available_models(WEIGHTS_DIR)  # not a segmentation model


def test_a_grey_twin_that_cannot_serve_is_one_clear_error(tmp_path):
    import shutil

    from facecam.errors import FacecamError
    from facecam.realtime.segmenter import WEIGHTS_DIR
    from facecam.realtime.verifier import Verifier

    model = tmp_path / "v.onnx"
    shutil.copy(WEIGHTS_DIR / "facecam_verifier.onnx", model)
    assert Verifier(model).grey_twin is None  # none beside it: the colour model alone
    (tmp_path / "v_grey.onnx").write_bytes(b"not a model")
    try:
        Verifier(model)
    except FacecamError as exc:
        message = str(exc)
    else:
        raise AssertionError("a broken twin was taken")
    assert "grey twin" in message and "v_grey.onnx" in message and "remove or rename it" in message
    assert "\n" not in message
    assert Verifier(model, twin=False).grey_twin is None  # and the colour model still opens alone


def test_grey_crops_have_equal_channels_and_the_cli_names_the_twin(tmp_path):
    from facecam.training.verifier import grey_crops

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    grey = grey_crops(crops)
    assert grey.shape == crops.shape and (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert grey_crops(crops[:0]).shape == (0, 8, 8, 3)
    result = run_cli(
        "facecam-train",
        "verifier",
        "--photos",
        str(tmp_path),
        "b.json",
        "none",
        "--grey",
        "--out",
        str(tmp_path / "v.onnx"),
    )
    assert_clean_error(result, "must end in _grey.onnx")

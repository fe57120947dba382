"""The shipped default model: it loads, carries its card, and FP16 agrees with FP32 (the INT8 twin:
tests/test_int8.py)."""

from __future__ import annotations

import numpy as np
from conftest import probe, run_cli

from facecam.realtime.segmenter import DEFAULT_MODEL, WEIGHTS_DIR, Segmenter, resolve_model

SAMPLE = WEIGHTS_DIR.parent / "samples" / "astronaut.mp4"


def test_default_model_files_and_card(int8_exact):
    files = resolve_model(None)
    assert files.fp32 == WEIGHTS_DIR / f"{DEFAULT_MODEL}.onnx" and files.fp16 is not None and files.int8 is not None
    for path in (files.fp32, files.fp16, files.int8):
        assert path.stat().st_size < 25 * 1024 * 1024
    assert files.finder is not None and files.finder.stat().st_size < 25 * 1024 * 1024
    with Segmenter(provider="cpu") as default:
        assert default.crop_path == files.int8  # the CPU segments face crops with the INT8 twin
        assert default.finder is not None and default.finder.path == files.finder  # and finds faces with this
    with Segmenter(files.fp32, provider="cpu") as fp32, Segmenter(files.fp16) as fp16:
        assert fp32.card.precision == "fp32" and fp16.card.precision == "fp16"
        assert fp32.card.metrics["val_iou"] > 0.85 and fp32.card.dataset and fp32.card.epochs > 0
        frame = _sample_frame()
        a, b = fp32.process(frame) >= 128, fp16.process(frame) >= 128
    assert a[103, 229] and not a[10, 600]  # the face at t = 2 s is there (see sample_clip.camera_path); a corner is not
    assert 0.02 < a.mean() < 0.3
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.99


def _sample_frame() -> np.ndarray:
    import av

    with av.open(str(SAMPLE)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == 60:
                return frame.to_ndarray(format="bgr24")
    raise AssertionError("sample clip too short")


def test_readme_first_command_on_the_sample(tmp_path):
    out = tmp_path / "astronaut_blur.mp4"
    result = run_cli("facecam", "--video", str(SAMPLE), "--out", str(out), "--mode", "blur")
    assert result.returncode == 0, result.stderr
    assert probe(out)["frames"] == probe(SAMPLE)["frames"] == 240


def test_shipped_verifier_tells_a_face_crop_from_a_plain_one():
    from facecam.realtime.segmenter import available_models
    from facecam.realtime.verifier import DEFAULT_VERIFIER, Verifier

    assert DEFAULT_VERIFIER not in available_models()  # not offered as a segmentation model
    assert (WEIGHTS_DIR / f"{DEFAULT_VERIFIER}.onnx").stat().st_size < 25 * 1024 * 1024
    verifier = Verifier(twin=False)  # the colour model: a plain grey wall would go to the twin
    assert verifier.card.class_names == ("not_face", "face") and verifier.card.metrics["holdout_face_kept"] > 0.8
    frame = _sample_frame()
    face = frame[40:200, 150:310]  # the astronaut's face at t = 2 s, about half the crop
    wall = np.full_like(face, 128)
    scores = verifier.scores([face, wall])
    assert scores[0] > 0.5 > scores[1]
    twin = Verifier().grey_twin  # the grey twin is shipped beside it, of the same size and classes
    assert twin is not None and twin.size == verifier.size and twin.card.class_names == verifier.card.class_names
    assert (WEIGHTS_DIR / f"{DEFAULT_VERIFIER}_grey.onnx").stat().st_size < 25 * 1024 * 1024


def test_shipped_crowd_model_loads_and_finds_the_sample_face():
    """weights/facecam_face_crowd.onnx (the crowd fine-tune, --model facecam_face_crowd): its card,
    its FP16 twin, and the face of the sample clip."""
    from facecam.realtime.segmenter import available_models

    assert "facecam_face_crowd" in available_models()
    files = resolve_model("facecam_face_crowd")
    assert files.fp16 is not None and all(p.stat().st_size < 25 * 1024 * 1024 for p in (files.fp32, files.fp16))
    with Segmenter("facecam_face_crowd") as crowd:
        assert crowd.card.model_name == "fast_unet" and crowd.card.precision == "fp32"
        mask = crowd.process(_sample_frame()) >= 128
    assert mask[103, 229] and not mask[10, 600]

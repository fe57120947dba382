"""A finder model beside a model: it runs the whole-frame passes; the model itself every crop."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from facecam.errors import FacecamError
from facecam.export.onnx_export import sample_pixels
from facecam.realtime.providers import ModelFiles
from facecam.realtime.segmenter import WEIGHTS_DIR, Segmenter, available_models, resolve_model

#: two shipped models that paint differently, as the model and its finder
CROPS, FINDS = WEIGHTS_DIR / "facecam_face_crowd.onnx", WEIGHTS_DIR / "facecam_face_finder.onnx"


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """``face.onnx`` with ``face_finder.onnx`` beside it, names resolving in ``tmp_path``."""
    from facecam.realtime import segmenter

    shutil.copy(CROPS, tmp_path / "face.onnx")
    shutil.copy(FINDS, tmp_path / "face_finder.onnx")
    monkeypatch.setattr(segmenter, "resolve_model", lambda spec: resolve_model(spec, weights_dir=tmp_path))
    return tmp_path


def test_the_finder_is_found_beside_the_model_and_is_not_listed(pair):
    assert resolve_model("face", weights_dir=pair) == ModelFiles(
        fp32=pair / "face.onnx", finder=pair / "face_finder.onnx"
    )
    assert available_models(pair) == ["face"]
    assert resolve_model(pair / "face.onnx").finder is None  # a path is that one file, for everything


def test_whole_frame_passes_run_the_finder_and_every_crop_the_model(pair):
    tensor = sample_pixels(160, 224, batch=1, seed=5)
    with Segmenter("face", provider="cpu") as seg, Segmenter(CROPS, provider="cpu") as crops:
        with Segmenter(FINDS, provider="cpu") as finds:
            assert not np.array_equal(crops.infer(tensor), finds.infer(tensor))  # the two can be told apart
            assert seg.finder is not None and seg.finder.path == pair / "face_finder.onnx"
            assert seg.companions() == ["finding faces: face_finder.onnx"] and crops.companions() == []
            assert seg.files_said() == "face.onnx (finding faces: face_finder.onnx)"
            assert crops.files_said() == crops.path.name
            assert np.array_equal(seg.infer(tensor), finds.infer(tensor))  # whole-frame passes
            assert np.array_equal(seg.infer_batch(tensor), crops.infer_batch(tensor))  # followed faces
            assert np.array_equal(seg.infer_first_looks(tensor), crops.infer_batch(tensor))  # first looks
    assert seg.finder.session is None  # closed with the model


def _finder_card_says(pair, key: str, value: str) -> None:
    """The shipped finder copied beside ``face.onnx`` with one entry of its card changed."""
    finder = onnx.load(str(FINDS))
    for prop in finder.metadata_props:
        if prop.key == key:
            prop.value = value
    onnx.save(finder, str(pair / "face_finder.onnx"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("facecam.class_names", '["background", "hair", "face"]'),
        ("facecam.color_order", '"BGR"'),  # it would get its input with the channels swapped
    ],
)
def test_a_finder_that_reads_its_input_otherwise_is_a_clear_error(pair, key, value):
    _finder_card_says(pair, key, value)
    with pytest.raises(FacecamError, match="cannot find faces for face.onnx"):
        Segmenter("face", provider="cpu")


def test_a_finder_that_is_no_model_is_a_clear_error(pair):
    (pair / "face_finder.onnx").write_bytes(b"not a model")
    with pytest.raises(FacecamError, match="the finder of face.onnx"):
        Segmenter("face", provider="cpu")


def test_an_export_keeps_the_finder_beside_it_and_says_so(tmp_path):
    from conftest import tiny_checkpoint

    from facecam.export.onnx_export import export_onnx

    (tmp_path / "face_finder.onnx").write_bytes(b"the finder of another day")
    report = export_onnx(tiny_checkpoint(tmp_path / "t.pt"), tmp_path / "face.onnx")
    assert (tmp_path / "face_finder.onnx").read_bytes() == b"the finder of another day"  # never lost
    assert any("kept face_finder.onnx" in line for line in report.checks)

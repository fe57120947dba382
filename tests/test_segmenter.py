"""Segmenter: model resolution, FP16/FP32 choice, metadata, processing, a quiet CPU start."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from facecam.errors import FacecamError, UnknownNameError
from facecam.realtime.segmenter import DEFAULT_MODEL, ModelFiles, Segmenter, resolve_model


def test_resolve_names_and_paths(tiny_model, tmp_path):
    shutil.copy(tiny_model, tmp_path / "face.onnx")
    assert resolve_model("face", tmp_path) == ModelFiles(tmp_path / "face.onnx", None)
    shutil.copy(tiny_model.with_name("tiny_fp16.onnx"), tmp_path / "face_fp16.onnx")
    files = resolve_model("face", tmp_path)
    assert files.fp16 == tmp_path / "face_fp16.onnx"
    assert files.for_provider("CPUExecutionProvider") == files.fp32  # FP16 is slow on the CPU provider
    assert files.for_provider("CUDAExecutionProvider") == files.fp16
    assert resolve_model(str(tiny_model), tmp_path) == ModelFiles(tiny_model)  # a path: that file
    with pytest.raises(UnknownNameError, match="face"):
        resolve_model("nose", tmp_path)
    with pytest.raises(FacecamError, match=f"{DEFAULT_MODEL}.*pass a model: the path of a .onnx"):
        resolve_model(None, tmp_path / "empty")


def test_segmenter_reads_card_and_processes(tiny_model, capfd):
    with Segmenter(tiny_model) as seg:
        assert seg.provider == "CPUExecutionProvider"
        assert seg.card.model_name == "fast_unet" and seg.card.normalization_in_graph
        frame = np.random.default_rng(0).integers(0, 255, (90, 130, 3), dtype=np.uint8)
        prob = seg.probability(frame)
        assert prob.dtype == np.float32 and prob.shape == seg.inference_size((90, 130))
        assert 0 <= prob.min() and prob.max() <= 1
        mask = seg.process(frame)
        assert mask.shape == (90, 130) and mask.dtype == np.uint8
    assert capfd.readouterr().err == ""  # no CUDA error flood on a CPU machine


def test_fp16_file_runs_too(tiny_model):
    with Segmenter(tiny_model.with_name("tiny_fp16.onnx")) as seg:
        assert seg.card.precision == "fp16"
        assert seg.process(np.zeros((64, 64, 3), np.uint8)).shape == (64, 64)


def test_model_without_card_is_a_clear_error(tiny_model, tmp_path):
    import onnx

    model = onnx.load(str(tiny_model))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(FacecamError, match="no facecam model card"):
        Segmenter(tmp_path / "bare.onnx")

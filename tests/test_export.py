"""Export: metadata, parity checks, FP16, atomic failure, and the runtime on both files."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import assert_clean_error, run_cli, tiny_checkpoint

from facecam.errors import FacecamError
from facecam.export import onnx_export
from facecam.export.onnx_export import ExportCheckError, export_onnx
from facecam.model_card import ModelCard
from facecam.realtime.segmenter import Segmenter


def test_export_writes_card_and_passes_checks(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "t.pt")
    report = export_onnx(ckpt, tmp_path / "face.onnx", fp16=True)
    assert report.fp32_max_abs_diff <= onnx_export.FP32_ATOL
    assert report.fp16_dice >= onnx_export.FP16_MIN_DICE
    for path, precision in ((tmp_path / "face.onnx", "fp32"), (tmp_path / "face_fp16.onnx", "fp16")):
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props})
        assert card.precision == precision and card.model_name == "fast_unet" and card.epochs == 1
        assert card.metrics == {"val_dice": 0.5, "val_iou": 0.33} and card.normalization_in_graph
        assert card.class_names == ("background", "face", "hair") and card.face_classes == (1,)
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io stays float32
        dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]


def test_runtime_runs_both_files_alike(tmp_path):
    export_onnx(tiny_checkpoint(tmp_path / "t.pt"), tmp_path / "face.onnx", fp16=True)
    frame = onnx_export.sample_pixels(96, 128, batch=1)[0].transpose(1, 2, 0)[..., ::-1].astype(np.uint8).copy()
    with Segmenter(tmp_path / "face.onnx") as a, Segmenter(tmp_path / "face_fp16.onnx") as b:
        pa, pb = a.probability(frame), b.probability(frame)
    assert pa.shape == pb.shape == a.inference_size((96, 128))
    assert np.abs(pa - pb).max() < 0.02


def test_failed_check_leaves_nothing(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "t.pt")
    (tmp_path / "face.onnx").write_bytes(b"previous model")
    monkeypatch.setattr(onnx_export, "FP32_ATOL", -1.0)  # no export can pass now
    with pytest.raises(ExportCheckError, match="FP32 ONNX differs from torch"):
        export_onnx(ckpt, tmp_path / "face.onnx", fp16=True)
    assert (tmp_path / "face.onnx").read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.onnx", "t.pt"]


def test_fp16_check_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "FP16_MIN_DICE", 1.01)
    with pytest.raises(ExportCheckError, match="FP16 face mask Dice"):
        export_onnx(tiny_checkpoint(tmp_path / "t.pt"), tmp_path / "face.onnx", fp16=True)
    assert not list(tmp_path.glob("*.onnx*"))


def test_export_cli_and_bad_input(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "t.pt")
    r = run_cli("facecam-export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--fp16", "--simplify")
    assert r.returncode == 0, r.stderr
    assert "FP32 vs torch" in r.stdout and (tmp_path / "m_fp16.onnx").is_file()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert_clean_error(
        run_cli("facecam-export", "--checkpoint", str(junk), "--out", str(tmp_path / "x.onnx")), "cannot be read"
    )
    assert_clean_error(run_cli("facecam-export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x.pt")), ".onnx")
    assert_clean_error(
        run_cli("facecam-export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "no" / "x.onnx")), "does not exist"
    )


def test_checkpoint_of_another_shape_is_a_clear_error(tmp_path):
    import torch

    ckpt = tiny_checkpoint(tmp_path / "t.pt")
    payload = torch.load(ckpt, weights_only=False)
    payload["model_kwargs"] = {"width": 8}  # weights are width 4
    torch.save(payload, ckpt)
    with pytest.raises(FacecamError, match="do not fit model"):
        export_onnx(ckpt, tmp_path / "x.onnx")


def test_export_without_fp16_removes_a_stale_fp16_twin(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "t.pt")
    export_onnx(ckpt, tmp_path / "face.onnx", fp16=True)
    report = export_onnx(tiny_checkpoint(tmp_path / "t2.pt", seed=1), tmp_path / "face.onnx")
    assert not (tmp_path / "face_fp16.onnx").exists()
    assert any("removed face_fp16.onnx" in line for line in report.checks)

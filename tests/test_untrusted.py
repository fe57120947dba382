"""Untrusted files: a checkpoint or a model file from someone else runs no code and reads nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from conftest import assert_clean_error, run_cli, tiny_checkpoint

from facecam.errors import FacecamError
from facecam.model_card import ModelCard
from facecam.model_file import checked_card
from facecam.realtime.segmenter import Segmenter
from facecam.training.checkpoint import load_checkpoint, save_checkpoint


class _CreatesFile:
    """Unpickling this calls ``open(marker, "w")``: the file appears if the loader runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    """A real facecam checkpoint with a code-running object hidden in its config."""
    payload = torch.load(tiny_checkpoint(path.with_suffix(".good.pt")), weights_only=True)
    payload["config"] = {"command": _CreatesFile(marker)}
    torch.save(payload, path)  # torch.save, not save_checkpoint: that refuses such payloads
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A four-photo data folder in facecam's layout (a face ellipse, labels 0/1/2)."""
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    for i in range(4):
        image = np.full((64, 64, 3), (180, 170, 160), np.uint8)
        label = np.zeros((64, 64), np.uint8)
        cv2.ellipse(label, (32 + i, 34), (12, 16), 0, 0, 360, 1, -1)
        cv2.ellipse(label, (32 + i, 18), (14, 6), 0, 0, 360, 2, -1)
        image[label == 1] = (120, 150, 210)
        image[label == 2] = (30, 30, 40)
        cv2.imwrite(str(root / "images" / f"p{i}.jpg"), image)
        cv2.imwrite(str(root / "labels" / f"p{i}.png"), label)
    (root / "train.txt").write_text("p0\np1\np2\n")
    (root / "val.txt").write_text("p3\n")
    return root


def test_the_crafted_checkpoint_does_run_code_when_unpickled_freely(tmp_path):
    marker = tmp_path / "pwned"
    torch.load(crafted_checkpoint(tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()  # so the entry-point tests below would see it, were the loader unsafe


@pytest.mark.parametrize("entry", ["export", "evaluate", "init", "resume", "blend-base", "blend-tuned"])
def test_a_crafted_checkpoint_runs_no_code_in_any_entry_point(entry, data, tmp_path):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    evil = crafted_checkpoint(tmp_path / "evil.pt", marker)
    good = tiny_checkpoint(tmp_path / "good.pt")
    train = ("facecam-train", "--data", str(data), "--model", "fast_unet", "--width", "4", "--size", "64")
    train += ("--epochs", "1", "--batch-size", "2", "--workers", "0", "--out", str(run))
    blend = ("facecam-train", "blend", "--data", str(data), "--alpha", "0.5", "--out", str(tmp_path / "b.pt"))
    if entry == "resume":
        run.mkdir()
        shutil.copy(evil, run / "last.pt")
    args = {
        "export": ("facecam-export", "--checkpoint", str(evil), "--out", str(tmp_path / "m.onnx")),
        "evaluate": ("facecam-train", "evaluate", "--checkpoint", str(evil), "--data", str(data), "--split", "val"),
        "init": (*train, "--init", str(evil)),
        "resume": (*train, "--resume"),
        "blend-base": (*blend, "--base", str(evil), "--tuned", str(good)),
        "blend-tuned": (*blend, "--base", str(good), "--tuned", str(evil)),
    }[entry]
    result = run_cli(*args, timeout=300)
    assert result.returncode == 2
    assert_clean_error(result, "last.pt" if entry == "resume" else evil.name, "plain values")
    assert not marker.exists()
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "b.pt").exists()


def test_checkpoints_facecam_writes_hold_only_plain_values(tmp_path):
    path = tiny_checkpoint(tmp_path / "t.pt")
    assert torch.load(path, weights_only=True)["model_name"] == "fast_unet"
    with pytest.raises(FacecamError, match=r"checkpoint\.config\.out is a PosixPath|is a \w*Path"):
        save_checkpoint({**load_checkpoint(path), "config": {"out": Path("x")}}, tmp_path / "u.pt")
    assert not (tmp_path / "u.pt").exists()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"num_classes": 10**9}, "num_classes"),
        ({"state_dict": {"w": "not a tensor"}}, "state_dict"),
        ({"model_kwargs": {"width": [4]}}, "model_kwargs"),
        ({"card": {"input_size": [10**6, 64]}}, "card"),
        ({"model_kwargs": {"width": 200_000}}, "model_kwargs numbers"),
        ({"model_kwargs": {"width": -3}}, "model_kwargs numbers"),
    ],
)
def test_a_checkpoint_with_wrong_values_is_refused_in_one_line(change, fragment, tmp_path):
    path = tiny_checkpoint(tmp_path / "t.pt")
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, **change}, tmp_path / "bad.pt")
    with pytest.raises(FacecamError, match=fragment):
        load_checkpoint(tmp_path / "bad.pt")


# ONNX model files -----------------------------------------------------------------------------


def _edited_model(tiny_model: Path, out: Path, edit) -> Path:
    model = onnx.load(str(tiny_model))
    edit(model)
    onnx.save(model, str(out))
    return out


def _set_card(model, **values) -> None:
    for prop in model.metadata_props:
        name = prop.key.removeprefix("facecam.")
        if name in values:
            prop.value = values[name] if isinstance(values[name], str) else json.dumps(values[name])


def _external_passwd(model) -> None:
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "64")):
        tensor.external_data.add(key=key, value=value)


BAD_MODELS = {
    "external data outside": (_external_passwd, "outside the model's folder"),
    "card of a wrong type": (lambda m: _set_card(m, input_size='"large"'), "'input_size'"),
    "absurd input size": (lambda m: _set_card(m, input_size=[100000, 100000]), "'input_size'"),
    "card that is not JSON": (lambda m: _set_card(m, mean="[0.5, 0.5"), "'mean' is not valid JSON"),
    "boolean as a number": (lambda m: _set_card(m, face_classes=[True]), "'face_classes'"),
    "huge card value": (lambda m: _set_card(m, dataset=json.dumps("x" * 100_000)), "'dataset'"),
}


@pytest.mark.parametrize("case", BAD_MODELS)
def test_a_bad_model_file_is_refused_before_onnxruntime_opens_it(case, tiny_model, tmp_path, monkeypatch):
    edit, fragment = BAD_MODELS[case]
    bad = _edited_model(tiny_model, tmp_path / "bad.onnx", edit)
    import onnxruntime

    def never(*args, **kwargs):
        raise AssertionError("onnxruntime opened a model that should have been refused")

    monkeypatch.setattr(onnxruntime, "InferenceSession", never)
    with pytest.raises(FacecamError, match=fragment) as info:
        Segmenter(bad, provider="cpu")
    assert "bad.onnx" in str(info.value)


@pytest.mark.parametrize("case", ["external data outside", "absurd input size", "card of a wrong type"])
def test_bad_model_files_are_one_line_errors_in_facecam_and_the_bench(case, tiny_model, clip, tmp_path):
    edit, fragment = BAD_MODELS[case]
    bad = _edited_model(tiny_model, tmp_path / "bad.onnx", edit)
    out = tmp_path / "o.mp4"
    result = run_cli("facecam", "--video", str(clip), "--out", str(out), "--model", str(bad), "--no-display")
    assert result.returncode == 2
    assert_clean_error(result, fragment)
    assert not out.exists()
    result = run_cli("facecam-bench", "--source", str(clip), "--model", str(bad))
    assert result.returncode == 2
    assert_clean_error(result, fragment)


def test_a_card_whose_classes_are_not_the_outputs_is_refused(tiny_model, tmp_path):
    bad = _edited_model(tiny_model, tmp_path / "two.onnx", lambda m: _set_card(m, class_names=["background", "face"]))
    with pytest.raises(FacecamError, match=r"output is \(1, 3, 64, 64\).*says \(1, 2, 64, 64\) \(2 classes\)"):
        Segmenter(bad, provider="cpu")


def test_external_data_beside_the_model_is_accepted(tiny_model, tmp_path):
    model = onnx.load(str(tiny_model))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    assert checked_card(tmp_path / "ext.onnx").class_names == ("background", "face", "hair")
    with Segmenter(tmp_path / "ext.onnx", provider="cpu") as seg:
        assert seg.process(np.zeros((32, 32, 3), np.uint8)).shape == (32, 32)


def test_a_fixed_size_model_whose_input_is_not_the_cards_is_refused(tiny_model, tmp_path):
    def fix_size(model):
        _set_card(model, dynamic_size=True)
        for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim[2:], (48, 48), strict=True):
            dim.dim_value = value
        _set_card(model, dynamic_size=False)

    bad = _edited_model(tiny_model, tmp_path / "fixed.onnx", fix_size)
    with pytest.raises(FacecamError, match="input 'pixels' is 48x48; the model card says 64x64"):
        checked_card(bad)


def test_card_fields_are_checked_when_built_too():
    with pytest.raises(FacecamError, match="'std'"):
        ModelCard(std=(0.2, 0.0, 0.2))
    with pytest.raises(FacecamError, match="'precision'"):
        ModelCard(precision="int4")


def _external(location: str):
    def edit(model) -> None:
        tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "64")):
            tensor.external_data.add(key=key, value=value)

    return edit


@pytest.mark.parametrize("location", ["bad\x00name", "*/_ORT_MEM_ADDR_/*", "missing.bin", "C:/Windows/x"])
def test_external_data_names_that_are_not_a_file_beside_the_model_are_refused(location, tiny_model, tmp_path):
    bad = _edited_model(tiny_model, tmp_path / "bad.onnx", _external(location))
    with pytest.raises(FacecamError, match="outside the model's folder"):
        checked_card(bad)


def test_a_linked_model_reads_nothing_beside_the_link(tiny_model, tmp_path):
    # the link sits beside a private file; the model it points to names that file as its data
    (tmp_path / "home").mkdir()
    (tmp_path / "download").mkdir()
    (tmp_path / "home" / "secret.bin").write_bytes(bytes(4096))
    _edited_model(tiny_model, tmp_path / "download" / "m.onnx", _external("secret.bin"))
    (tmp_path / "home" / "model.onnx").symlink_to(tmp_path / "download" / "m.onnx")
    with pytest.raises(FacecamError, match="outside the model's folder"):
        Segmenter(tmp_path / "home" / "model.onnx", provider="cpu")


def test_sparse_and_function_tensors_are_checked_too(tiny_model):
    from onnx import helper

    values = helper.make_tensor("v", onnx.TensorProto.FLOAT, [1], [0.0])
    values.ClearField("float_data")
    values.data_location = onnx.TensorProto.EXTERNAL
    values.external_data.add(key="location", value="../../etc/passwd")
    sparse = helper.make_sparse_tensor(values, helper.make_tensor("i", onnx.TensorProto.INT64, [1], [0]), [4])
    node = helper.make_node("Constant", [], ["c"], sparse_value=sparse)
    model = onnx.load(str(tiny_model))
    model.graph.node.append(node)
    from facecam.model_file import all_tensors

    assert any(t.name == "v" for t in all_tensors(model))
    function = helper.make_function("local", "f", [], ["c"], [node], [helper.make_opsetid("", 17)])
    assert any(
        t.name == "v" for t in all_tensors(helper.make_model(helper.make_graph([], "g", [], []), functions=[function]))
    )


def test_a_verifier_whose_card_is_not_square_is_refused(tmp_path):
    from facecam.realtime.segmenter import WEIGHTS_DIR
    from facecam.realtime.verifier import Verifier

    def wide(model) -> None:
        _set_card(model, input_size=[64, 96])
        _set_card(model, dynamic_size=False)

    bad = _edited_model(WEIGHTS_DIR / "facecam_verifier.onnx", tmp_path / "wide_verifier.onnx", wide)
    with pytest.raises(FacecamError, match="fixed square input|the model card says 64x96"):
        Verifier(bad)

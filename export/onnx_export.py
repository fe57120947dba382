"""Checkpoint -> ONNX (FP32, optionally FP16) with the model card in the metadata, verified.

The exported graph takes raw pixels: ``(N, 3, H, W) float32`` in the card's colour order with
values 0..255, and does the mean/std normalisation itself, so the runtime only resizes.
Batch, height and width are dynamic. Every export is checked before it is kept:
``onnx.checker``, then onnxruntime against torch (FP32 logits within ``FP32_ATOL`` +
``FP32_RTOL`` x |torch|) and FP16 face masks against FP32 (Dice >= ``FP16_MIN_DICE``).
A failed check raises and leaves no file behind.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from facecam.errors import FacecamError
from facecam.face import face_probability, is_face
from facecam.model_card import ModelCard
from facecam.model_file import checked_card, write_with_card
from facecam.training.checkpoint import load_checkpoint, model_from_checkpoint

FP32_ATOL = 1e-3
FP32_RTOL = 1e-3
FP16_MIN_DICE = 0.99
OPSET = 17


class ExportCheckError(FacecamError):
    """The exported model does not match torch (or FP16 does not match FP32)."""


class RawPixelModel(torch.nn.Module):
    """Wraps a segmentation model so its input is raw 0..255 pixels, normalised inside the graph."""

    def __init__(self, model: torch.nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("scale", 1.0 / (torch.tensor(std, dtype=torch.float32) * 255).view(1, 3, 1, 1))
        self.register_buffer("shift", (torch.tensor(mean, dtype=torch.float32) * 255).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels - self.shift) * self.scale)


@dataclass
class ExportReport:
    """What an export wrote and how its checks came out."""

    fp32_path: Path
    fp16_path: Path | None = None
    fp32_max_abs_diff: float = 0.0
    fp16_dice: float | None = None
    checks: list[str] = field(default_factory=list)


def card_from_checkpoint(ckpt: dict[str, Any], precision: str = "fp32") -> ModelCard:
    """The model card for a checkpoint: its preprocessing, classes and training facts."""
    card = ckpt["card"]
    metrics = {k: round(float(v), 4) for k, v in ckpt.get("metrics", {}).items()}
    config = ckpt.get("config", {})
    return ModelCard(
        input_size=tuple(card["input_size"]),
        color_order="RGB",
        mean=tuple(card["mean"]),
        std=tuple(card["std"]),
        class_names=tuple(card["class_names"]),
        face_classes=tuple(card["face_classes"]),
        normalization_in_graph=True,
        dynamic_size=True,
        precision=precision,
        model_name=ckpt["model_name"],
        dataset=ckpt.get("dataset", ""),
        epochs=int(ckpt.get("epoch", 0)),
        metrics=metrics,
        train_command=config.get("command", ""),
    )


def sample_pixels(height: int, width: int, batch: int = 2, seed: int = 0) -> np.ndarray:
    """Real-looking test input: smooth shaded backgrounds with a skin-toned face-like ellipse.

    Returns ``(batch, 3, height, width) float32`` RGB 0..255. Random noise would be a poor
    test: real frames are smooth, and noise drives activations where real input never goes.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((batch, 3, height, width), np.float32)
    for b in range(batch):
        base = rng.uniform(30, 220, 3)
        grad = rng.uniform(-60, 60, 3)
        img = base[:, None, None] + grad[:, None, None] * (yy / height)[None]
        cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
        ry, rx = rng.uniform(0.2, 0.35) * height, rng.uniform(0.15, 0.28) * width
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        skin = np.array([rng.uniform(150, 240), rng.uniform(100, 180), rng.uniform(80, 150)])
        img[:, inside] = skin[:, None] * (1 - 0.2 * ((xx[inside] - cx) / rx))[None]
        out[b] = np.clip(img + rng.normal(0, 3, img.shape), 0, 255)
    return out


def _torch_export(wrapped: torch.nn.Module, sample: np.ndarray, path: Path, spatial_dims: bool) -> None:
    """``wrapped`` to ONNX at ``path``: input "pixels", output "logits", a dynamic batch, and with
    ``spatial_dims`` a dynamic height and width too."""
    axes = {0: "batch", 2: "height", 3: "width"} if spatial_dims else {0: "batch"}
    with warnings.catch_warnings():
        # torch 2.14 steers towards its dynamo exporter; the TorchScript one is kept on purpose:
        # it writes one self-contained file with dynamic batch/height/width, and is checked after.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapped,
            (torch.from_numpy(sample[:1]),),
            str(path),
            input_names=["pixels"],
            output_names=["logits"],
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes={"pixels": axes, "logits": axes},
        )


def _face_mask(logits: np.ndarray, face_classes: tuple[int, ...]) -> np.ndarray:
    return is_face(face_probability(logits, face_classes))  # the runtime's definition


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)


def _run_onnx(path: Path, pixels: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    checked_card(path)  # the same checks as the runtime's: what export writes, the runtime must accept
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: pixels})[0]


def _topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """Reorder the graph's nodes so each comes after its inputs' producers.

    onnxruntime's FP16 converter appends its input casts at the end of the node list,
    which onnx.checker rightly rejects.
    """
    graph = model.graph
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        still = [n for n in pending if not all(i in ready for i in n.input)]
        if len(still) == len(pending):
            raise ExportCheckError("exported graph has a cycle or a missing input; cannot order its nodes")
        for node in pending:
            if node not in still:
                ordered.append(node)
                ready.update(node.output)
        pending = still
    del graph.node[:]
    graph.node.extend(ordered)
    return model


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    fp16: bool = False,
    simplify: bool = False,
    sample: np.ndarray | None = None,
) -> ExportReport:
    """Export ``checkpoint`` to ``out`` (FP32) and, with ``fp16``, ``<stem>_fp16.onnx`` beside it.

    ``sample``: ``(N, 3, H, W) float32`` RGB 0..255 input for the parity checks (default:
    :func:`sample_pixels` at the training size). Raises ExportCheckError when a check fails;
    then neither file is left behind. Existing files at the targets are replaced only after
    every check has passed.
    """
    out = Path(out)
    if out.suffix != ".onnx":
        raise FacecamError(f"--out must end in .onnx, got {out}")
    if not out.parent.is_dir():
        raise FacecamError(f"output folder {out.parent} does not exist")
    ckpt = load_checkpoint(checkpoint)
    card = card_from_checkpoint(ckpt)
    wrapped = RawPixelModel(model_from_checkpoint(ckpt), card.mean, card.std).eval()
    if sample is None:
        sample = sample_pixels(*card.input_size)
    with torch.no_grad():
        reference = wrapped(torch.from_numpy(sample)).numpy()

    fp16_path = out.with_name(out.stem + "_fp16.onnx") if fp16 else None
    tmp32 = out.with_name(out.name + ".tmp")
    tmp16 = fp16_path.with_name(fp16_path.name + ".tmp") if fp16_path else None
    report = ExportReport(fp32_path=out, fp16_path=fp16_path)
    try:
        _torch_export(wrapped, sample, tmp32, spatial_dims=True)
        model32 = onnx.load(str(tmp32))
        if simplify:
            try:
                import onnxslim
            except ImportError as exc:
                raise FacecamError("--simplify needs onnxslim: pip install onnxslim") from exc
            model32 = onnxslim.slim(model32)
        write_with_card(model32, card, tmp32)
        report.checks.append("onnx.checker FP32: ok")

        got = _run_onnx(tmp32, sample)
        report.fp32_max_abs_diff = float(np.abs(got - reference).max())
        if not np.allclose(got, reference, rtol=FP32_RTOL, atol=FP32_ATOL):
            raise ExportCheckError(
                f"FP32 ONNX differs from torch: max |diff| {report.fp32_max_abs_diff:.2e} "
                f"(allowed {FP32_ATOL} + {FP32_RTOL} x |torch|)"
            )
        report.checks.append(
            f"FP32 vs torch: max |diff| {report.fp32_max_abs_diff:.2e} (tolerance {FP32_ATOL} + {FP32_RTOL}x|torch|)"
        )

        if tmp16 is not None:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model16 = _topologically_sorted(convert_float_to_float16(onnx.load(str(tmp32)), keep_io_types=True))
            write_with_card(model16, card_from_checkpoint(ckpt, precision="fp16"), tmp16)
            report.checks.append("onnx.checker FP16: ok")
            report.fp16_dice = _dice(
                _face_mask(_run_onnx(tmp16, sample), card.face_classes), _face_mask(got, card.face_classes)
            )
            if report.fp16_dice < FP16_MIN_DICE:
                raise ExportCheckError(f"FP16 face mask Dice vs FP32 is {report.fp16_dice:.4f} < {FP16_MIN_DICE}")
            report.checks.append(f"FP16 vs FP32 face-mask Dice: {report.fp16_dice:.4f} (>= {FP16_MIN_DICE})")
        os.replace(tmp32, out)
        if tmp16 is not None:
            os.replace(tmp16, fp16_path)
        else:
            stale = out.with_name(out.stem + "_fp16.onnx")
            if stale.exists():  # GPU providers would load it in place of the new model
                stale.unlink()
                report.checks.append(f"removed {stale.name}, an FP16 twin of an earlier export (use --fp16 to renew)")
        stale8 = out.with_name(out.stem + "_int8.onnx")
        if stale8.exists():  # the CPU would load it in place of the new model
            stale8.unlink()
            report.checks.append(f"removed {stale8.name}, an INT8 twin of an earlier export (renew: --quantize {out})")
        finder = out.with_name(out.stem + "_finder.onnx")
        if finder.exists():  # a model of its own, kept: say that it will find the faces for this one
            report.checks.append(
                f"kept {finder.name}: it runs the whole-frame passes that find faces for {out.name} "
                f"(delete it to let {out.name} find them too)"
            )
    finally:
        for tmp in (tmp32, tmp16):
            if tmp is not None and tmp.exists():
                tmp.unlink()
    return report


def export_classifier(model: torch.nn.Module, card: ModelCard, out: str | Path) -> Path:
    """Export a crop classifier (``(N, 3, S, S)`` -> ``(N, classes, 1, 1)`` logits, such as the face
    verifier) with its card, normalisation in the graph, checked against torch like a segmenter."""
    out = Path(out)
    if out.suffix != ".onnx" or not out.parent.is_dir():
        raise FacecamError(f"--out must be a .onnx file in an existing folder, got {out}")
    wrapped = RawPixelModel(model, card.mean, card.std).eval()
    sample = sample_pixels(*card.input_size, batch=4)
    with torch.no_grad():
        reference = wrapped(torch.from_numpy(sample)).numpy()
    tmp = out.with_name(out.name + ".tmp")
    try:
        _torch_export(wrapped, sample, tmp, spatial_dims=False)
        write_with_card(onnx.load(str(tmp)), card, tmp)
        got = _run_onnx(tmp, sample)
        if not np.allclose(got, reference, rtol=FP32_RTOL, atol=FP32_ATOL):
            raise ExportCheckError(f"ONNX differs from torch: max |diff| {np.abs(got - reference).max():.2e}")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out

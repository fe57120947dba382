"""An exported FP32 model -> its INT8 twin for the CPU (``NAME_int8.onnx``), checked against FP32.

onnxruntime runs 8-bit convolutions about 1.5x faster than FP32 on the CPU (the default model:
a 160 px face crop 2.4 -> 1.6 ms, 224 px 4.5 -> 3.0 ms, one thread, on this project's machine),
and on the CPU provider the runtime segments the faces it follows with the twin when it is
there; what decides what is a face (the whole-frame passes, a proposal's first look) stays FP32
(:class:`facecam.realtime.segmenter.Segmenter`).

Static quantization: weights per channel, activations by ranges measured on calibration photos,
QDQ format; the first and last convolutions and the output stay in float (:func:`float_nodes`).
Weights use 7 bits (``reduce_range``): x86 CPUs without VNNI add pairs of 8-bit products into
16 bits, which 8-bit weights can overflow; 7-bit ones cannot (2 x 255 x 63 fits). onnxruntime's
documentation advises this for such CPUs; none was at hand to check it on.

The photos are seen as the runtime sees them (its own preprocessing): a square crop of the
middle at a face crop's input sizes (160 and 224) and the whole photo at the full-frame pass's
size (long side 224).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import onnx

from facecam.errors import FacecamError
from facecam.face import face_probability, is_face
from facecam.model_card import ModelCard
from facecam.model_file import checked_card, write_with_card
from facecam.realtime.processing import preprocess

#: the face masks of the INT8 twin against FP32's, on photos the calibration did not see
INT8_MIN_DICE = 0.98
#: the fewest photos: every tenth checks the twin, and at least 10 calibrate it
MIN_PHOTOS = 12
#: input sides the calibration shows the model (a face crop's two, and the full-frame pass's long side)
CALIBRATION_SIDES = (160, 224)
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class QuantizeError(FacecamError):
    """The INT8 twin could not be made, or its masks differ from FP32's."""


@dataclass
class Int8Report:
    path: Path
    calibration_photos: int
    check_photos: int
    dice: float
    checks: list[str] = field(default_factory=list)


def int8_path(fp32: Path) -> Path:
    """Where the INT8 twin of ``fp32`` goes (and where the runtime looks for it)."""
    return fp32.with_name(fp32.stem + "_int8.onnx")


def photo_paths(source: Path) -> list[Path]:
    """The photos of a folder, or of a split file (one stem a line, the photos in ``images/``
    beside it, as the datasets lay them out), sorted."""
    if source.is_dir():
        return sorted(p for p in source.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if source.suffix != ".txt" or not source.is_file():
        raise FacecamError(f"calibration source {source} is neither a folder of photos nor a split .txt file")
    images = source.parent / "images"
    by_stem = {p.stem: p for p in images.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES} if images.is_dir() else {}
    stems = [line.strip() for line in source.read_text().splitlines() if line.strip()]
    missing = [s for s in stems if s not in by_stem]
    if missing:
        raise FacecamError(f"{len(missing)} photos of {source} are not in {images} (first: {missing[0]})")
    return [by_stem[s] for s in stems]


def evenly(paths: list[Path], count: int) -> list[Path]:
    """``count`` of ``paths`` spread over the whole list (all of them when there are fewer)."""
    if len(paths) <= count:
        return list(paths)
    return [paths[i] for i in np.linspace(0, len(paths) - 1, count).round().astype(int)]


def model_inputs(photo: np.ndarray, card: ModelCard) -> list[np.ndarray]:
    """``(1, 3, h, w) float32`` inputs the runtime would give the model for one BGR photo (its
    own preprocessing: colour order, normalisation, the dark-input lift): the photo's middle
    square at each calibration side, and the whole photo, long side 224."""
    height, width = photo.shape[:2]
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    square = photo[y0 : y0 + side, x0 : x0 + side]
    views = [(square, (s, s)) for s in CALIBRATION_SIDES]
    scale = max(CALIBRATION_SIDES) / max(height, width)
    views.append((photo, (max(16, round(height * scale) // 16 * 16), max(16, round(width * scale) // 16 * 16))))
    return [preprocess(image, size, card) for image, size in views]


def _inputs_of(photos: list[Path], card: ModelCard) -> Iterator[np.ndarray]:
    for path in photos:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FacecamError(f"calibration photo {path} cannot be read as an image")
        yield from model_inputs(image, card)


def _face_mask(session, tensor: np.ndarray, card: ModelCard) -> np.ndarray:
    logits = session.run(None, {session.get_inputs()[0].name: tensor})[0]
    return is_face(face_probability(logits, card.face_classes))


def agreement(fp32: Path, int8: Path, inputs: list[np.ndarray], card: ModelCard) -> float:
    """Dice of the two models' face masks over all ``inputs`` pooled (1.0 when neither paints)."""
    import onnxruntime as ort

    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    both = total = 0
    for tensor in inputs:
        ma, mb = _face_mask(a, tensor, card), _face_mask(b, tensor, card)
        both += int((ma & mb).sum())
        total += int(ma.sum() + mb.sum())
    return 1.0 if total == 0 else 2 * both / total


def quantize_int8(
    fp32: str | Path, sources: list[str | Path], photos: int = 200, out: str | Path | None = None
) -> Int8Report:
    """Write the INT8 twin of the exported model ``fp32`` (default path: :func:`int8_path`).

    ``sources``: folders of photos or split files (see :func:`photo_paths`); ``photos`` of them
    (at least MIN_PHOTOS), spread evenly, calibrate, and every tenth of those is kept back to check the twin instead
    (face-mask Dice against FP32 >= INT8_MIN_DICE). Nothing is written when a check fails; an
    existing twin is replaced only after the check has passed.
    """
    from onnxruntime.quantization import CalibrationDataReader

    fp32 = Path(fp32)
    card = checked_card(fp32)
    if card.precision != "fp32":
        raise FacecamError(f"{fp32} is a {card.precision} model; quantize the FP32 export")
    out = Path(out) if out is not None else int8_path(fp32)
    every = evenly([p for source in sources for p in photo_paths(Path(source))], photos)
    if len(every) < MIN_PHOTOS:
        raise FacecamError(f"calibration needs at least {MIN_PHOTOS} photos; the sources hold {len(every)}")
    check = every[::10]
    calibrate = [p for p in every if p not in set(check)]
    input_name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self._inputs = _inputs_of(calibrate, card)

        def get_next(self):
            tensor = next(self._inputs, None)
            return None if tensor is None else {input_name: tensor}

    tmp = out.with_name(out.name + ".tmp")
    try:
        dice = _write_checked_twin(fp32, tmp, out, card, Photos(), check)
    except OSError as exc:  # a folder that cannot be written, a full disk: the user's to fix
        raise QuantizeError(f"cannot write {out}: {exc.strerror or exc}") from exc
    report = Int8Report(out, len(calibrate), len(check), dice)
    report.checks.append(
        f"calibrated on {len(calibrate)} photos; INT8 vs FP32 face-mask Dice on {len(check)} others: "
        f"{dice:.4f} (>= {INT8_MIN_DICE})"
    )
    return report


def _write_checked_twin(fp32: Path, tmp: Path, out: Path, card: ModelCard, photos, check: list[Path]) -> float:
    """Quantize ``fp32`` with the calibration reader ``photos`` into ``tmp``, check it on the
    ``check`` photos and move it to ``out``; returns the check's Dice. No ``tmp`` is left."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="facecam-int8-") as work:
        prepared = Path(work) / "prepared.onnx"
        try:
            quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            keep_float = float_nodes(onnx.load(str(prepared)).graph)
            quantize_static(
                str(prepared),
                str(tmp),
                photos,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=keep_float,
            )
            write_with_card(onnx.load(str(tmp)), replace(card, precision="int8"), tmp)
            checked_card(tmp)  # what the runtime will check
            dice = agreement(fp32, tmp, list(_inputs_of(check, card)), card)
            if dice < INT8_MIN_DICE:
                raise QuantizeError(f"INT8 face masks vs FP32: Dice {dice:.4f} < {INT8_MIN_DICE}; not written")
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
    return dice


def float_nodes(graph: onnx.GraphProto) -> list[str]:
    """The nodes left in float: the first convolution (it sees the raw pixels) and the last (the
    head that gives the logits), as is usual, and the node that gives the graph's output (the
    final Resize, which the CPU runtime hands to OpenCV: see final_resize). With the head in 8
    bits the face edge moved: on ``d3.mp4`` the frames with holes over 1% went 0.8% -> 2.5%; with
    it in float 0.6%, at the same speed (1.5-1.6 ms a 160 px crop)."""
    convs = [node.name for node in graph.node if node.op_type == "Conv"]
    last = [node.name for node in graph.node if graph.output[0].name in node.output]
    return list(dict.fromkeys(convs[:1] + convs[-1:] + last))

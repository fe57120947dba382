"""The model card: everything the runtime needs to use a model, stored inside the ONNX file.

Export writes it (``facecam.export``), the runtime reads it (``facecam.realtime``); this
module is the only place that knows the keys. Each field is one ``metadata_props`` entry
whose value is JSON, so tools such as Netron show it readably.

The network contract the card describes:
    input  ``(N, 3, H, W)`` float32, colour order ``color_order``, values ``(x/255 - mean)/std``
    output ``(N, C, H, W)`` float32 logits, one channel per ``class_names`` entry.
When ``normalization_in_graph`` is true the export has written that normalisation into the
graph: the input is then raw 0..255 values in ``color_order`` and the runtime only resizes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from facecam.errors import FacecamError

#: Prefix of every metadata key written by facecam.
KEY_PREFIX = "facecam."
#: Bumped when a field changes meaning; the runtime refuses cards it does not understand.
CARD_VERSION = 1

DEFAULT_CLASS_NAMES = ("background", "face", "hair")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelCard:
    """Preprocessing, classes and provenance of one exported model.

    Defaults describe a model trained by ``facecam-train`` on the 3-class face data.
    """

    input_size: tuple[int, int] = (256, 256)  # (height, width) the model was trained at
    color_order: str = "RGB"  # "RGB" or "BGR"
    mean: tuple[float, float, float] = IMAGENET_MEAN  # on 0..1 values
    std: tuple[float, float, float] = IMAGENET_STD
    class_names: tuple[str, ...] = DEFAULT_CLASS_NAMES
    face_classes: tuple[int, ...] = (1,)  # indices of class_names that together form "face"
    normalization_in_graph: bool = False
    dynamic_size: bool = True  # the graph accepts other input sizes than input_size
    precision: str = "fp32"  # "fp32", "fp16" or "int8" (weights; the graph's inputs/outputs stay float32)
    model_name: str = ""
    dataset: str = ""
    epochs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. {"val_dice": .., "val_iou": ..}
    train_command: str = ""
    card_version: int = CARD_VERSION

    def __post_init__(self) -> None:
        # Every field is checked for its type and range, so a card from a file someone else made
        # (or a checkpoint's card) cannot carry a value the runtime would trip over later.
        for name, check in _FIELD_CHECKS.items():
            problem = check(getattr(self, name))
            if problem:
                raise FacecamError(f"model card: field {name!r} {problem}, got {_shown(getattr(self, name))}")
        if any(not 0 <= c < len(self.class_names) for c in self.face_classes):
            raise FacecamError(
                f"model card: field 'face_classes' {list(self.face_classes)} must index class_names "
                f"{list(self.class_names)}"
            )

    def to_metadata(self) -> dict[str, str]:
        """The card as ONNX ``metadata_props``: ``{"facecam.<field>": json}``."""
        return {KEY_PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], source: str = "model") -> ModelCard:
        """Read a card back from ONNX metadata, strictly: a file without one, a value that is not
        JSON, too long, or of the wrong type or range is a FacecamError naming the field."""
        known = {f.name for f in fields(cls)}
        values = {}
        for key, raw in props.items():
            name = key[len(KEY_PREFIX) :] if key.startswith(KEY_PREFIX) else None
            if name not in known:
                continue
            if len(raw) > MAX_VALUE_CHARS:
                raise FacecamError(
                    f"{source}: model card field {name!r} is {len(raw)} characters (at most {MAX_VALUE_CHARS})"
                )
            try:
                values[name] = json.loads(raw, parse_constant=_no_constant)
            except (json.JSONDecodeError, ValueError, RecursionError) as exc:
                raise FacecamError(f"{source}: model card field {name!r} is not valid JSON") from exc
        if "card_version" not in values:
            raise FacecamError(
                f"{source}: no facecam model card in the ONNX metadata; export the model with "
                "facecam-export (or add the facecam.* metadata keys, see README 'Bring your own model')"
            )
        version = values["card_version"]
        if type(version) is not int or version < 1:
            raise FacecamError(
                f"{source}: model card field 'card_version' must be a whole number >= 1, got {_shown(version)}"
            )
        if version > CARD_VERSION:
            raise FacecamError(
                f"{source}: model card version {version} is newer than this facecam "
                f"understands ({CARD_VERSION}); upgrade facecam"
            )
        for name in _TUPLE_FIELDS:
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except FacecamError as exc:
            raise FacecamError(f"{source}: {exc}") from exc


#: a card value longer than this (JSON characters) is refused: a card is a few hundred bytes
MAX_VALUE_CHARS = 64 * 1024
#: the largest model input side accepted (a card asking for more is broken or hostile)
MAX_INPUT_SIDE = 4096
MAX_CLASSES = 64
_TUPLE_FIELDS = ("input_size", "mean", "std", "class_names", "face_classes")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value) -> bool:
    return type(value) is int  # bool is an int subclass; True is no size


def _is_number(value) -> bool:
    return (type(value) is int or type(value) is float) and math.isfinite(value)


def _text(limit: int):
    return lambda v: None if isinstance(v, str) and len(v) <= limit else f"must be a text of at most {limit} characters"


def _one_of(*choices: str):
    return lambda v: None if v in choices and isinstance(v, str) else f"must be one of {', '.join(choices)}"


def _flag(value) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _input_size(value) -> str | None:
    ok = isinstance(value, tuple) and len(value) == 2 and all(_is_int(v) and 8 <= v <= MAX_INPUT_SIDE for v in value)
    return None if ok else f"must be (height, width), each a whole number within 8..{MAX_INPUT_SIDE}"


def _triple(low: float, high: float, low_open: bool = False):
    def check(value) -> str | None:
        ok = isinstance(value, tuple) and len(value) == 3 and all(_is_number(v) and low <= v <= high for v in value)
        ok = ok and not (low_open and min(value) <= low)
        return None if ok else f"must be 3 numbers within {low}..{high}" + (" (not 0)" if low_open else "")

    return check


def _class_names(value) -> str | None:
    ok = isinstance(value, tuple) and 1 <= len(value) <= MAX_CLASSES
    ok = ok and all(isinstance(v, str) and 0 < len(v) <= 64 for v in value)
    return None if ok else f"must be 1..{MAX_CLASSES} names of 1..64 characters"


def _face_classes(value) -> str | None:
    ok = isinstance(value, tuple) and 1 <= len(value) <= MAX_CLASSES and all(_is_int(v) for v in value)
    return None if ok and len(set(value)) == len(value) else "must be distinct class indices (at least one)"


def _epochs(value) -> str | None:
    return None if _is_int(value) and 0 <= value <= 1_000_000 else "must be a whole number within 0..1000000"


def _metrics(value) -> str | None:
    ok = isinstance(value, dict) and len(value) <= 64
    ok = ok and all(isinstance(k, str) and len(k) <= 64 and _is_number(v) for k, v in value.items())
    return None if ok else "must map at most 64 names to numbers"


def _version(value) -> str | None:
    return None if _is_int(value) and 1 <= value <= CARD_VERSION else f"must be a whole number within 1..{CARD_VERSION}"


_FIELD_CHECKS = {
    "input_size": _input_size,
    "color_order": _one_of("RGB", "BGR"),
    "mean": _triple(0.0, 1.0),
    "std": _triple(0.0, 10.0, low_open=True),
    "class_names": _class_names,
    "face_classes": _face_classes,
    "normalization_in_graph": _flag,
    "dynamic_size": _flag,
    "precision": _one_of("fp32", "fp16", "int8"),
    "model_name": _text(256),
    "dataset": _text(4096),
    "epochs": _epochs,
    "metrics": _metrics,
    "train_command": _text(16384),
    "card_version": _version,
}

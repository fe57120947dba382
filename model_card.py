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
    precision: str = "fp32"  # "fp32" or "fp16" (weights; the graph's inputs/outputs stay float32)
    model_name: str = ""
    dataset: str = ""
    epochs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. {"val_dice": .., "val_iou": ..}
    train_command: str = ""
    card_version: int = CARD_VERSION

    def __post_init__(self) -> None:
        if self.color_order not in ("RGB", "BGR"):
            raise FacecamError(f"model card: color_order must be RGB or BGR, got {self.color_order!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            raise FacecamError(f"model card: input_size must be (height, width) >= 8, got {self.input_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise FacecamError("model card: mean and std need 3 values each, std > 0")
        if not self.face_classes or any(not 0 <= c < len(self.class_names) for c in self.face_classes):
            raise FacecamError(
                f"model card: face_classes {list(self.face_classes)} must index class_names {list(self.class_names)}"
            )
        if self.precision not in ("fp32", "fp16"):
            raise FacecamError(f"model card: precision must be fp32 or fp16, got {self.precision!r}")

    def to_metadata(self) -> dict[str, str]:
        """The card as ONNX ``metadata_props``: ``{"facecam.<field>": json}``."""
        return {KEY_PREFIX + k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], source: str = "model") -> ModelCard:
        """Read a card back from ONNX metadata; a file without one is a clear error."""
        known = {f.name for f in fields(cls)}
        values = {}
        for key, raw in props.items():
            name = key[len(KEY_PREFIX) :] if key.startswith(KEY_PREFIX) else None
            if name in known:
                try:
                    values[name] = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise FacecamError(f"{source}: metadata {key} is not valid JSON") from exc
        if "card_version" not in values:
            raise FacecamError(
                f"{source}: no facecam model card in the ONNX metadata; export the model with "
                "facecam-export (or add the facecam.* metadata keys, see README 'Bring your own model')"
            )
        if values["card_version"] > CARD_VERSION:
            raise FacecamError(
                f"{source}: model card version {values['card_version']} is newer than this facecam "
                f"understands ({CARD_VERSION}); upgrade facecam"
            )
        for name in ("input_size", "mean", "std", "class_names", "face_classes"):
            if name in values:
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except TypeError as exc:
            raise FacecamError(f"{source}: malformed model card ({exc})") from exc

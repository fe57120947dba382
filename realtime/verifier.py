"""The face verifier at run time: keeps the full-frame pass's proposals that are faces.

    verifier = Verifier()                       # weights/facecam_verifier.onnx
    scores = verifier.scores([crop, ...])       # (S, S, 3) uint8 BGR crops -> (N,) face probability

Trained by ``facecam-train verifier`` (see ``facecam.training.verifier``); its model card says
its input size and classes, like a segmenter's.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError
from facecam.face import face_probability
from facecam.realtime import processing
from facecam.realtime.crops import Crop, crop_pixels
from facecam.realtime.providers import open_session
from facecam.realtime.segmenter import WEIGHTS_DIR, resolve_model
from facecam.realtime.shape_sessions import first_output, sessions_per_shape

DEFAULT_VERIFIER = "facecam_verifier"


#: a crop whose colour channels differ by less than this many grey levels (the mean of |B-G|
#: plus the mean of |G-R|), once lifted as the model sees it if dark, has no colour: a
#: black-and-white photo, or a camera's infrared night picture when delivered without colour
GREY_LEVELS = 2.0


def is_grey(crop: np.ndarray) -> bool:
    """Whether a ``(S, S, 3) uint8 BGR`` crop has no colour (see GREY_LEVELS). Measured after
    the dark-input lift (processing.lifted_if_dark), as the model sees it: a dim colour crop's
    channels differ little until lifted, and it stays with the colour model."""
    b, g, r = cv2.split(processing.lifted_if_dark(crop))
    return float(cv2.absdiff(b, g).mean()) + float(cv2.absdiff(g, r).mean()) < GREY_LEVELS


def grey_twin_path(path: Path) -> Path:
    """Where a verifier's grey twin is: ``NAME_grey.onnx`` beside ``NAME.onnx``."""
    return path.with_name(f"{path.stem}_grey{path.suffix}")


class Verifier:
    """A crop classifier: ``(N, 3, S, S)`` -> ``(N, classes, 1, 1)`` logits, S the card's fixed size.

    Colour is much of what tells a face from a leg or a coat to a model this small, so the one
    trained on colour crops turns grey faces down (it kept 35% of the held-out faces in grey,
    93% in colour). When a grey twin (``NAME_grey.onnx``, trained on the same crops without
    their colour: ``facecam-train verifier --grey``) is beside the FP32 file, crops without
    colour (see is_grey) go to the twin; crops with colour get the colour model's answers as
    before. ``twin=False``: the colour model alone.
    """

    def __init__(
        self, model: str | Path = DEFAULT_VERIFIER, provider: str = "cpu", threads: int = 0, twin: bool = True
    ) -> None:
        opened = open_session(resolve_model(model), provider, threads)
        self.session, self.provider, self.path, self.card = opened.session, opened.provider, opened.path, opened.card
        height, width = self.card.input_size
        if self.card.dynamic_size or height != width:
            self.session = None
            raise FacecamError(f"model {self.path}: a verifier takes one fixed square input; its card says otherwise")
        self.size = int(height)
        self.input_name = self.session.get_inputs()[0].name
        self._check_output_shape()
        # CUDA plans again for each batch size: a session per (padded) size, see shape_sessions
        self.shape_sessions = sessions_per_shape(
            self.session, (1, 3, self.size, self.size), self.path, self.provider, threads
        )
        self.grey_twin = self._open_twin(grey_twin_path(resolve_model(model).fp32), provider, threads) if twin else None

    def _open_twin(self, path: Path, provider: str, threads: int) -> Verifier | None:
        """The grey twin at ``path`` if there is one; one that cannot serve is a clear error."""
        if not path.is_file():
            return None
        try:
            grey = Verifier(path, provider, threads, twin=False)
        except FacecamError as exc:
            self.session = None
            raise FacecamError(f"the verifier's grey twin {path} cannot be used ({exc}); remove or rename it") from exc
        if grey.size != self.size:
            self.session = None
            raise FacecamError(
                f"the verifier's grey twin {path} takes {grey.size} px crops, {self.path.name} {self.size}; "
                "remove or rename it"
            )
        return grey

    def _check_output_shape(self) -> None:
        """One inference must give ``(1, classes, 1, 1)``, as the card promises."""
        try:
            logits = self.session.run(None, {self.input_name: np.zeros((1, 3, self.size, self.size), np.float32)})[0]
        except Exception as exc:  # onnxruntime raises its own exception types
            self.session = None
            raise FacecamError(f"model {self.path}: fails on an input of the card's size ({exc})") from exc
        expected = (1, len(self.card.class_names), 1, 1)
        if logits.shape != expected:
            self.session = None
            raise FacecamError(f"model {self.path}: output is {tuple(logits.shape)}; a verifier's is {expected}")

    def scores_of(self, frame: np.ndarray, crops: list[Crop]) -> np.ndarray:
        """``(N,)`` face probability of each square ``crop`` of a ``(H, W, 3) uint8 BGR`` frame."""
        if not crops:
            return np.zeros(0, np.float32)
        pixels = [crop_pixels(frame, c, self.size) for c in crops]
        return self.scores(pixels)

    def scores(self, crops: list[np.ndarray]) -> np.ndarray:
        """``(S, S, 3) uint8 BGR`` crops -> ``(N,)`` face probability (the grey ones by the grey
        twin, when there is one)."""
        if self.session is None:
            raise FacecamError("Verifier is closed")
        grey = [is_grey(c) for c in crops] if self.grey_twin is not None else [False] * len(crops)
        if not any(grey):
            return self._scores(crops)
        out = np.empty(len(crops), np.float32)
        for flag, model in ((True, self.grey_twin), (False, self)):
            picked = [i for i, g in enumerate(grey) if g == flag]
            if picked:
                out[picked] = model._scores([crops[i] for i in picked])
        return out

    def _scores(self, crops: list[np.ndarray]) -> np.ndarray:
        batch = np.concatenate([processing.preprocess(c, (self.size, self.size), self.card) for c in crops])
        try:
            logits = first_output(self.session, self.shape_sessions, self.input_name, batch)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FacecamError(f"inference failed on {self.path.name}: {str(exc).splitlines()[0]}") from exc
        return face_probability(logits, self.card.face_classes)[:, 0, 0]

    def close(self) -> None:
        if self.grey_twin is not None:
            self.grey_twin.close()
        self.session = self.shape_sessions = None


def open_verifier(spec: str | Path | None, provider: str = "cpu", threads: int = 0) -> Verifier | None:
    """``--verifier``: None or ``"none"`` for no verifier; the default name when its file is not
    shipped also gives none (every proposal is then followed); any other name must exist."""
    if spec is None or str(spec).lower() == "none":
        return None
    if str(spec) == DEFAULT_VERIFIER and not (WEIGHTS_DIR / f"{DEFAULT_VERIFIER}.onnx").is_file():
        return None
    return Verifier(spec, provider="cpu" if provider == "auto" else provider, threads=threads)


def believed(verifier: Verifier | None, frame: np.ndarray, boxes: list, threshold: float, trusted_share: float) -> list:
    """The face ``boxes`` (frame pixels) the verifier takes for faces, in order: all of them
    without a verifier, and those it trusts unscored (see :func:`scores_or_trusted`)."""
    scores = scores_or_trusted(verifier, frame, boxes, trusted_share)
    return [box for box, score in zip(boxes, scores, strict=True) if score is None or score > threshold]


def scores_or_trusted(verifier: Verifier | None, frame: np.ndarray, boxes: list, trusted_share: float) -> list:
    """The verifier's face probability of each face box (frame pixels), or None for a box it
    does not judge (every box without a verifier). A face of ``trusted_share`` of the frame's
    long side or more is what the segmenter was trained on (a portrait, a webcam): trusted as it
    is; the verifier is for the small blobs of the zoomed pass, and for a long thin blob (a sunlit
    sleeve, an arm: a box less than half that wide), which is no portrait however long it is."""
    big = trusted_share * max(frame.shape[:2])
    small = [k for k, box in enumerate(boxes) if box.size < big or box.short_side < big / 2]
    scores: list = [None] * len(boxes)
    if verifier is None or not small:
        return scores
    # centred on the face, as the verifier was trained (a crop fitted into the frame is not), and
    # aimed as a proposal's first crop is (crops.HEAD_ASPECT_WIDE: it kept more faces than the
    # crops it was trained on, 79 of 91 `groups` faces against 78, not-face painted the same)
    crops = [Crop.around(boxes[k], proposal=True) for k in small]
    for k, score in zip(small, verifier.scores_of(frame, crops), strict=True):
        scores[k] = score  # float32, compared as before (a Python float may round the other way)
    return scores

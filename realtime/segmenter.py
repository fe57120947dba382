"""Segmenter: one ONNX model, its model card and an onnxruntime session.

    with Segmenter("facecam_face") as seg:        # a name in weights/ or a path
        mask = seg.process(frame)                 # (H, W, 3) uint8 BGR -> (H, W) uint8 0..255

Model names resolve in the package's ``weights/`` folder: ``NAME.onnx`` (FP32) and, when they
exist, ``NAME_fp16.onnx``, which is taken on GPU providers (FP16 on the CPU provider is slow),
and ``NAME_int8.onnx``, which segments the faces being followed on the CPU (1.5x faster, where
the CPU runs it exactly: not on x86 with AVX2 and no VNNI, see realtime.cpu_int8; the
whole-frame passes and the first look at each proposal, which decide what is a face, stay FP32:
in INT8 they lost faces), and ``NAME_finder.onnx``, another model that runs the whole-frame
passes (:meth:`Segmenter.infer`), which propose where faces are, while this one segments every
face in its crop: a model trained to paint whole faces in their crops can paint a small face in
a crowd less when it sees the whole frame (see weights/README.md). A path names exactly one
file, which is used for everything (the way to run the FP32 file alone on the CPU).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from facecam.errors import FacecamError, UnknownNameError
from facecam.face import face_probability
from facecam.model_file import checked_card
from facecam.realtime import processing
from facecam.realtime.cpu_int8 import int8_is_exact_here
from facecam.realtime.final_resize import agrees, graph_without_final_resize, resized_logits
from facecam.realtime.providers import PROVIDERS, ModelFiles, new_session, open_session, session_options
from facecam.realtime.shape_sessions import first_output, sessions_per_shape

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "facecam_face"


def available_models(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Names of the shipped segmentation models (FP32 files in ``weights_dir``)."""
    # the face verifier (NAME_verifier.onnx, its twin NAME_verifier_grey.onnx) is a crop classifier
    return sorted(
        p.stem
        for p in weights_dir.glob("*.onnx")
        if not p.stem.endswith(("_fp16", "_int8", "_finder", "_verifier", "_verifier_grey"))
    )


def resolve_model(spec: str | Path | None, weights_dir: Path = WEIGHTS_DIR) -> ModelFiles:
    """A model name (in ``weights_dir``) or a path -> its files; None means the default model."""
    spec = DEFAULT_MODEL if spec is None else spec
    if isinstance(spec, str) and spec.endswith("_int8") and Path(spec).parent == Path("."):
        raise UnknownNameError(
            f"{spec!r} is the INT8 twin of {spec[:-5]!r}, which the CPU uses for face crops; pass {spec[:-5]!r} "
            "(or the twin's path to run it alone)"
        )
    path = Path(spec)
    if path.suffix == ".onnx" or path.parent != Path("."):
        if not path.is_file():
            raise FacecamError(f"model file {path} does not exist")
        return ModelFiles(fp32=path)
    fp32, fp16, int8, finder = (weights_dir / f"{spec}{suffix}.onnx" for suffix in ("", "_fp16", "_int8", "_finder"))
    if fp32.is_file():
        return ModelFiles(
            fp32=fp32,
            fp16=fp16 if fp16.is_file() else None,
            int8=int8 if int8.is_file() else None,
            finder=finder if finder.is_file() else None,
        )
    names = available_models(weights_dir)
    if spec == DEFAULT_MODEL:
        raise FacecamError(
            f"the default model {DEFAULT_MODEL!r} is not in {weights_dir}; pass a model: the path of a .onnx "
            "exported with facecam-export" + (f", or one of: {', '.join(names)}" if names else "")
        )
    raise UnknownNameError(
        f"unknown model {spec!r}; models in {weights_dir}: {', '.join(names) or 'none'} "
        "(or pass a path to a .onnx file)"
    )


class Segmenter:
    """Face segmentation with one ONNX model on the best (or the requested) provider.

    ``provider``: ``auto`` (default: TensorRT, CUDA, CPU, the first that starts), ``cpu``,
    ``cuda`` or ``tensorrt``. ``threads``: onnxruntime intra-op threads (0 = its default).
    ``.provider`` names the provider that is active; ``.card`` holds the model card;
    ``.fallback`` says why the providers ``auto`` tried first did not start ("" when none failed).
    :meth:`probability` is one whole-frame pass at the model's size; for every face at every
    scale use :class:`facecam.realtime.faces.FaceFinder` around it.
    """

    def __init__(self, model: str | Path | None = None, provider: str = "auto", threads: int = 0) -> None:
        files = resolve_model(model)
        opened = open_session(files, provider, threads)
        self.session, self.provider, self.path, self.card = opened.session, opened.provider, opened.path, opened.card
        self.fallback = opened.fallback
        self.input_name = self.session.get_inputs()[0].name  # open_session checked there is one, (N, 3, H, W)
        self._check_output_shape()
        self._resize_logits = False
        if self.provider == PROVIDERS["cpu"]:
            self.session, self._resize_logits = self._without_final_resize(self.session, self.path, threads)
        #: what segments the face crops (infer_batch): on the CPU the INT8 twin when there is one
        #: and the CPU runs it exactly (see cpu_int8)
        self.crop_path, self.crop_session, self._crop_resize_logits = self.path, self.session, self._resize_logits
        twin = self.provider == PROVIDERS["cpu"] and files.int8 is not None
        #: the INT8 twin is there but this CPU would not run it exactly (see cpu_int8)
        self.int8_left_aside = twin and not int8_is_exact_here()
        if twin and not self.int8_left_aside:
            self._open_crop_twin(files.int8, threads)
        #: on CUDA a session per input shape (see shape_sessions); None elsewhere
        self.shape_sessions = sessions_per_shape(
            self.session, (1, 3, *self.card.input_size), self.path, self.provider, threads
        )
        #: what runs the whole-frame passes (infer): the finder model beside this one, if any
        self.finder: Segmenter | None = None
        if files.finder is not None:
            self.finder = self._open_finder(files.finder, threads)

    def companions(self) -> list[str]:
        """The files that run beside the model file, said for a log line ("face crops: NAME_int8.onnx",
        "finding faces: NAME_finder.onnx"); empty when the model file does everything."""
        said = [] if self.crop_path == self.path else [f"face crops: {self.crop_path.name}"]
        if self.int8_left_aside:  # (the crops then run on the model file itself)
            said = ["face crops in FP32: this CPU has no VNNI for the INT8 twin"]
        return said + ([] if self.finder is None else [f"finding faces: {self.finder.path.name}"])

    def files_said(self) -> str:
        """The model file's name with its companions in brackets, for a log line."""
        companions = self.companions()
        return self.path.name + (f" ({'; '.join(companions)})" if companions else "")

    @property
    def few_shapes(self) -> bool:
        """Whether each new input shape costs a new session (CUDA): callers then keep to few,
        e.g. every face crop at the model's own size."""
        return self.shape_sessions is not None

    def _without_final_resize(self, session, path: Path, threads: int):
        """On the CPU, ``path``'s graph without its final logits resize, which OpenCV does faster
        (see final_resize), where it gives the model's own output: ``(session, True)``; else
        ``(session, False)`` as it was."""
        import onnxruntime as ort

        graph = graph_without_final_resize(path)
        if graph is None:
            return session, False
        try:
            cut = ort.InferenceSession(graph, session_options(threads), providers=[PROVIDERS["cpu"]])
        except Exception:  # onnxruntime's own types: the whole graph stays, as it was checked
            return session, False
        height, width = self.card.input_size
        sizes = [(height, width)] + ([(96, 160)] if self.card.dynamic_size else [])
        if agrees(session, cut, self.input_name, sizes):
            return cut, True
        return session, False

    def _open_crop_twin(self, path: Path, threads: int) -> None:
        """The INT8 twin for the face crops; one that does not fit this model is an error, not a
        silent change of what is painted."""
        remake = f"delete it, or make it again with facecam-export --quantize {self.path}"
        try:
            card = checked_card(path)
        except FacecamError as exc:
            raise FacecamError(f"{exc} (the INT8 twin of {self.path.name}: {remake})") from exc
        # the twin's card is the model's own but for the precision: a twin left from another
        # export of the same name (other metrics, epochs, preprocessing) is refused
        if replace(card, precision=self.card.precision) != self.card:
            raise FacecamError(f"model file {path} is not the INT8 twin of {self.path.name}: {remake}")
        try:
            session = new_session(path, PROVIDERS["cpu"], threads)
        except Exception as exc:  # onnxruntime raises several types for unreadable models
            raise FacecamError(f"cannot load model {path}: {str(exc).splitlines()[0][:200]} ({remake})") from exc
        self.crop_path = path
        self.crop_session, self._crop_resize_logits = self._without_final_resize(session, path, threads)

    def _open_finder(self, path: Path, threads: int) -> Segmenter:
        """The finder model on this model's provider; one that reads its input or names its classes
        otherwise is an error, not a silent change of what is found."""
        short = {name: key for key, name in PROVIDERS.items()}[self.provider]
        try:
            finder = Segmenter(path, provider=short, threads=threads)
        except FacecamError as exc:
            raise FacecamError(f"{exc} (the finder of {self.path.name})") from exc
        # the frame is prepared by this model's card (processing.preprocess) and handed to the finder
        fields = (
            "input_size",
            "dynamic_size",
            "class_names",
            "face_classes",
            "mean",
            "std",
            "color_order",
            "normalization_in_graph",
        )
        if any(getattr(finder.card, f) != getattr(self.card, f) for f in fields):
            finder.close()
            raise FacecamError(
                f"model file {path} cannot find faces for {self.path.name}: its input or classes differ "
                f"({', '.join(fields)} must match); delete it or export it again"
            )
        return finder

    def _check_output_shape(self) -> None:
        """One inference at the card's size must give ``(1, classes, H, W)``: an exported graph does
        not always declare its output's channels, so this is where a card that lies is caught."""
        height, width = self.card.input_size
        try:
            logits = self.session.run(None, {self.input_name: np.zeros((1, 3, height, width), np.float32)})[0]
        except Exception as exc:  # onnxruntime raises its own exception types
            self.session = None
            raise FacecamError(f"model {self.path}: fails on an input of the card's size ({exc})") from exc
        expected = (1, len(self.card.class_names), height, width)
        if logits.shape != expected:
            self.session = None
            raise FacecamError(
                f"model {self.path}: output is {tuple(logits.shape)} for a {height}x{width} input; "
                f"the model card says {expected} ({len(self.card.class_names)} classes)"
            )

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the onnxruntime sessions."""
        self.session = self.crop_session = self.shape_sessions = None
        if self.finder is not None:
            self.finder.close()

    def inference_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` of the mask :meth:`probability` returns for a frame of ``frame_hw``."""
        return processing.inference_size(frame_hw, self.card)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """``(1, 3, h, w) float32`` -> ``(h, w) float32`` face probability 0..1: a whole-frame
        pass (or a tile of one), on the finder model when there is one, else the model file itself."""
        if self.finder is not None:
            return self.finder.infer(tensor)
        return self._run(self.session, self._resize_logits, self.path, tensor)[0]

    def infer_batch(self, tensor: np.ndarray) -> np.ndarray:
        """``(N, 3, h, w) float32`` -> ``(N, h, w) float32`` face probability 0..1 of N crops of
        faces being followed (one run for all N), on :attr:`crop_session`: the INT8 twin on the CPU
        when there is one."""
        return self._run(self.crop_session, self._crop_resize_logits, self.crop_path, tensor)

    def infer_first_looks(self, tensor: np.ndarray) -> np.ndarray:
        """:meth:`infer_batch` for the first look at each proposal, which decides whether it is a
        face: on the model file itself (with INT8 first looks 1 of the 103 held-out `pratheepan`
        faces was lost; a photo's faces are all first looks)."""
        return self._run(self.session, self._resize_logits, self.path, tensor)

    def _run(self, session, resize_logits: bool, path: Path, tensor: np.ndarray) -> np.ndarray:
        if session is None:
            raise FacecamError("Segmenter is closed")
        try:
            shapes = self.shape_sessions if session is self.session else None
            logits = first_output(session, shapes, self.input_name, tensor)
            if resize_logits:
                logits = resized_logits(logits, tensor.shape[2:])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FacecamError(f"inference failed on {path.name}: {str(exc).splitlines()[0]}") from exc
        return face_probability(logits, self.card.face_classes)

    def probability(self, frame: np.ndarray, timings: dict[str, float] | None = None) -> np.ndarray:
        """``(H, W, 3) uint8 BGR`` -> ``(h, w) float32`` face probability of one whole-frame pass.

        ``timings``, when given, gets the milliseconds spent under "preprocess" and "inference".
        """
        t0 = time.perf_counter()
        tensor = processing.preprocess(frame, self.inference_size(frame.shape[:2]), self.card)
        t1 = time.perf_counter()
        probability = self.infer(tensor)
        if timings is not None:
            timings.update({"preprocess": (t1 - t0) * 1000, "inference": (time.perf_counter() - t1) * 1000})
        return probability

    def process(self, frame: np.ndarray) -> np.ndarray:
        """``(H, W, 3) uint8 BGR`` -> ``(H, W) uint8`` face mask 0..255 at the frame's size (edge-aware upsampling)."""
        return (processing.upsample_mask(self.probability(frame), frame) * 255 + 0.5).astype(np.uint8)

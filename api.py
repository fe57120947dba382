"""The public Python API: one stateful object per stream of frames.

    import facecam

    with facecam.FaceStream(mode="blur") as stream:
        for frame in frames:                 # (H, W, 3) uint8 BGR, from any capture loop
            result = stream.process(frame)
            show(result.image)               # what `facecam --mode blur` writes
            result.mask                      # (H, W) float32 0..1, the face
            result.faces                     # the faces tracked in this frame (Box, frame pixels)

``FaceStream`` does per frame exactly what the ``facecam`` command does (the command's threaded
pipeline calls the same three steps, :meth:`FaceStream.find`, :meth:`FaceStream.alpha_in_box` and
:meth:`FaceStream.draw_in_box`, on different threads: the same alpha and picture, without a
frame-sized alpha): faces found at every scale, each segmented in its
own crop, tracked and smoothed, pockets closed, the mask upsampled edge-aware, then drawn.
Nothing global changes on import or construction: no signal handler, no onnxruntime log level.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facecam.errors import FacecamError
from facecam.realtime.compose import MODES, ComposeSettings, face_alpha_and_box, face_alpha_in_box, parse_background
from facecam.realtime.crops import Box
from facecam.realtime.drawing import MosaicBlock, draw, draw_in_box
from facecam.realtime.faces import EDGE_HOLD_PER_STRENGTH, FaceFinder, FrameFaces
from facecam.realtime.holes import close_pockets
from facecam.realtime.passes import PHOTO_SPLIT_THRESHOLD, finder_settings
from facecam.realtime.processing import UNKNOWN_BOX
from facecam.realtime.smoothing import AlphaHold, faces_region

#: the package's sample clip (a talking head), for trying the API out
SAMPLE_VIDEO = Path(__file__).resolve().parent / "samples" / "astronaut.mp4"


@dataclass
class Result:
    """What :meth:`FaceStream.process` made of one frame."""

    mask: np.ndarray  # (H, W) float32 0..1 at the frame's size: the face (grown and held in anonymize)
    image: np.ndarray  # (H, W, 3) uint8 BGR: the mode drawn (a grey mask image in "mask" mode)
    faces: list[Box] = field(default_factory=list)  # the faces tracked in this frame, in frame pixels
    # faces lost within the memory, still covered in anonymize: where each was lost and, once a
    # pan has moved it a pixel or more, where the picture has taken it (two boxes then)
    held: list[Box] = field(default_factory=list)
    index: int = 0  # the frame's number in this stream (0, 1, ...)


class FaceStream:
    """Face masks and the drawn modes of one stream of frames, frame by frame.

    ``model``: a model name in ``weights/`` or an ``.onnx`` path (None: the default model);
    ``mode``: one of ``MODES`` (overlay, mask, blur, replace, anonymize); ``smoothing``: temporal
    smoothing 0..1 (0 for unrelated photos); ``fps``: the stream's frame rate (how many frames a
    lost face stays covered in anonymize); ``verifier``: the face verifier's name or path, or None
    to keep every proposal; ``background``: replace mode's colour name, ``#rrggbb`` or image path,
    or a BGR image array; ``provider``/``threads``: onnxruntime's.

    To share models between streams: ``segmenter``, an open
    :class:`~facecam.realtime.segmenter.Segmenter` (then ``model``, ``provider`` and ``threads`` are
    not used), and ``verifier`` may be an open :class:`~facecam.realtime.verifier.Verifier`;
    :meth:`close` leaves both open. ``settings``: ready-made
    :class:`~facecam.realtime.compose.ComposeSettings` (then ``mode`` and the drawing arguments are
    not used); changing ``stream.settings.mode`` later changes what is drawn.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        mode: str = "overlay",
        *,
        smoothing: float = 0.6,
        fps: float = 30.0,
        verifier="facecam_verifier",
        background: str | np.ndarray | tuple[int, int, int] = "green",
        blur_sigma: float = 8.0,
        anonymize_style: str = "pixelate",
        anonymize_margin: float = 0.15,
        provider: str = "auto",
        threads: int = 0,
        segmenter=None,
        settings: ComposeSettings | None = None,
    ) -> None:
        from facecam.realtime.segmenter import Segmenter
        from facecam.realtime.verifier import open_verifier

        if not 0 <= smoothing <= 1:
            raise FacecamError(f"smoothing must be within 0..1, got {smoothing}")
        if not fps > 0:
            raise FacecamError(f"fps must be above 0, got {fps}")
        if settings is None:
            settings = ComposeSettings(
                mode=mode,
                background=parse_background(background) if isinstance(background, str) else background,
                blur_sigma=blur_sigma,
                anonymize_style=anonymize_style,
                anonymize_margin=anonymize_margin,
            )
        self.settings = settings
        self.smoothing = smoothing
        self.fps = float(fps)
        self._owns_segmenter = segmenter is None
        self._owns_verifier = isinstance(verifier, (str, Path))
        self.verifier = None
        self.segmenter = Segmenter(model, provider=provider, threads=threads) if segmenter is None else segmenter
        try:
            self.verifier = open_verifier(verifier, "cpu", threads) if self._owns_verifier else verifier
        except BaseException:
            self.close()
            raise
        self.finder = self._new_finder()
        self.alpha_hold = AlphaHold(EDGE_HOLD_PER_STRENGTH * smoothing)
        self.mosaic = MosaicBlock()  # anonymize's block size, kept steady from frame to frame
        self._finder_mode = self.settings.mode
        self._index = 0

    def _new_finder(self, photo: bool = False) -> FaceFinder:
        """A face finder for this stream's mode; for a ``photo``, one that looks at every frame and
        does not smooth (a photo is a stream of one frame)."""
        options = finder_settings(self.settings.mode)
        smoothing = self.smoothing
        if photo:
            options["find_every"], smoothing = 1, 0.0
            options["split_threshold"] = PHOTO_SPLIT_THRESHOLD
        return FaceFinder(
            self.segmenter, smoothing=smoothing, fps=self.fps, verifier=self.verifier, photo=photo, **options
        )

    @property
    def mode(self) -> str:
        return self.settings.mode

    @mode.setter
    def mode(self, mode: str) -> None:
        """Switch the drawn mode; the face finder's settings follow at the next frame (anonymize
        looks harder), and every tracked face, its smoothing and its memory are kept."""
        if mode not in MODES:
            raise FacecamError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
        self.settings.mode = mode

    def reset(self) -> None:
        """A new stream (another video, a camera re-opened): forget every face and its smoothing."""
        self.finder.reset()
        self.alpha_hold.reset()
        self.mosaic.reset()
        self._index = 0

    def find(self, frame: np.ndarray, index: int, timings: dict[str, float] | None = None) -> FrameFaces:
        """Step 1: the faces of frame ``index`` found, segmented in their crops, tracked and merged
        into the low-resolution mask, pockets inside each face closed. ``timings`` gets milliseconds
        per part (finder, crops, merge; the closing counts as merge)."""
        if self.settings.mode != self._finder_mode:  # switched (the mode setter, a window key)
            self.finder.follow_mode(self.settings.mode)
            self._finder_mode = self.settings.mode
        return _closed(self.finder.process(_checked(frame), index, timings), timings)

    def alpha(self, frame: np.ndarray, found: FrameFaces, mode: str | None = None) -> np.ndarray:
        """Step 2: the full-resolution ``(H, W) float32`` alpha for ``mode`` (default the stream's),
        edge-aware; a still face's edge held (smoothing.AlphaHold), except in anonymize, which
        grows the faces anyway. Call it once per frame, in frame order."""
        return self.alpha_and_box(frame, found, mode)[0]

    def alpha_and_box(
        self, frame: np.ndarray, found: FrameFaces, mode: str | None = None
    ) -> tuple[np.ndarray, tuple[slice, slice] | None]:
        """:meth:`alpha`, and the rows and columns outside which it is 0 (None: it is 0
        everywhere): give them to :meth:`draw` and it blends there without measuring them."""
        return self._alpha(frame, found, mode, face_alpha_and_box)

    def alpha_in_box(
        self, frame: np.ndarray, found: FrameFaces, mode: str | None = None
    ) -> tuple[np.ndarray | None, tuple[slice, slice] | None]:
        """:meth:`alpha_and_box` without the frame-sized array: the alpha's ``(h, w) float32``
        values inside the rows and columns outside which it is 0, and those (None, None: no face),
        for :meth:`draw_in_box`. The same values; the pipeline's way, as a frame-sized alpha costs
        a fill of zeros and a copy of the box (at 1080p, 5 MB a frame)."""
        return self._alpha(frame, found, mode, face_alpha_in_box)

    def _alpha(self, frame: np.ndarray, found: FrameFaces, mode: str | None, upsample, stream: bool = True):
        """``upsample`` (compose.face_alpha_and_box or face_alpha_in_box) of ``found``; in a
        ``stream`` a still face's edge held (not in anonymize, nor in a photo)."""
        mode = mode or self.settings.mode
        hold = None
        if mode == "anonymize":  # grown anyway: nothing to hold
            self.alpha_hold.reset()
        elif stream:

            def hold(alpha: np.ndarray) -> np.ndarray:
                # at the size the edge-aware upsampling filters at (a quarter of a 720p frame's
                # pixels); it changes only pixels near one half, so inside the box
                region = faces_region(found.faces, frame.shape[:2], image_hw=alpha.shape[:2])
                return self.alpha_hold.update(alpha, found.still, region)

        return upsample(
            frame,
            found.mask,
            mode,
            faces=found.faces,
            held=found.held,
            settings=self.settings,
            levels=found.levels,
            refine=hold,
        )

    def draw(
        self,
        frame: np.ndarray,
        alpha: np.ndarray,
        mode: str | None = None,
        found: FrameFaces | None = None,
        box=UNKNOWN_BOX,
    ) -> np.ndarray:
        """Step 3: ``mode`` (default the stream's) drawn from the frame and its alpha: ``(H, W, 3) uint8 BGR``.
        ``found``: what step 1 found in this frame, when at hand (its shrunk copies of the frame are
        reused); ``box``: what :meth:`alpha_and_box` gave with this alpha (by default the box is
        measured on ``alpha``: pass it only for an alpha left as step 2 made it). In anonymize the
        mosaic's blocks grow with the largest face in ``found`` (see drawing.MosaicBlock)."""
        levels = found.levels if found is not None else None
        return draw(frame, alpha, self.settings, mode, levels, box, self._block(frame, found, mode, self.mosaic))

    def draw_in_box(
        self,
        frame: np.ndarray,
        part: np.ndarray | None,
        box: tuple[slice, slice] | None,
        mode: str | None = None,
        found: FrameFaces | None = None,
    ) -> np.ndarray:
        """:meth:`draw` from what :meth:`alpha_in_box` gave."""
        levels, block = found.levels if found is not None else None, self._block(frame, found, mode, self.mosaic)
        return draw_in_box(frame, part, box, self.settings, mode, levels, block)

    def _block(self, frame: np.ndarray, found: FrameFaces | None, mode: str | None, mosaic: MosaicBlock) -> int | None:
        """anonymize's mosaic block for the faces tracked in ``found`` (None: the frame's own)."""
        if (mode or self.settings.mode) != "anonymize" or found is None:
            return None
        return mosaic.update(frame.shape[:2], [face.size for face in found.faces])

    def process(self, frame: np.ndarray) -> Result:
        """One ``(H, W, 3) uint8 BGR`` frame -> its :class:`Result`. Frames are numbered in call order."""
        found = self.find(frame, self._index)
        alpha, box = self.alpha_and_box(frame, found)
        image = self.draw(frame, alpha, found=found, box=box)
        result = Result(alpha, image, list(found.faces), [box for h in found.held for box in h.boxes], self._index)
        self._index += 1
        return result

    def process_photo(self, image: np.ndarray) -> Result:
        """One photo on its own: a full-frame pass of its own, no memory of earlier frames."""
        found = _closed(self._new_finder(photo=True).process(_checked(image), 0))
        alpha, box = self._alpha(image, found, self.settings.mode, face_alpha_and_box, stream=False)
        block = self._block(image, found, None, MosaicBlock())  # a photo's own, not the stream's
        drawn = draw(image, alpha, self.settings, None, found.levels, box, block)
        return Result(alpha, drawn, list(found.faces), [], 0)

    def close(self) -> None:
        """Release the models (a shared ``segmenter`` stays open)."""
        if self.verifier is not None and self._owns_verifier:
            self.verifier.close()
            self.verifier = None
        if self._owns_segmenter and getattr(self, "segmenter", None) is not None:
            self.segmenter.close()

    def __enter__(self) -> FaceStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _closed(found: FrameFaces, timings: dict[str, float] | None = None) -> FrameFaces:
    """``found`` with the pockets inside each face closed: a lit cheek, the lips (the second line
    behind the model)."""
    t0 = time.perf_counter()
    found.mask = close_pockets(found.mask)
    if timings is not None:
        timings["merge"] = timings.get("merge", 0.0) + (time.perf_counter() - t0) * 1000
    return found


def _checked(frame) -> np.ndarray:
    """A frame the finder can use, or a FacecamError that says what it got."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise FacecamError(f"frame must be an (H, W, 3) uint8 BGR array, got a {got}")
    if min(frame.shape[:2]) < 2:
        raise FacecamError(f"frame is {frame.shape[1]}x{frame.shape[0]} pixels; too small to hold a face")
    return frame


def video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame of a video file, in order, as ``(H, W, 3) uint8 BGR`` (the frames ``facecam --video``
    reads: upright where the file says it is shown turned, in the colours a player shows)."""
    from facecam.realtime.video_reader import VideoReader

    with VideoReader(Path(path)) as reader:
        yield from reader.frames()

"""Output modes: their settings, and the face alpha each draws from (the drawing itself is
:mod:`facecam.realtime.drawing`).

``compose(frame, mask, settings)`` takes the ``(H, W, 3) uint8 BGR`` frame and the
``(h, w) float32`` 0..1 mask at inference resolution, upsamples the mask edge-aware to the
frame's size and returns the ``(H, W, 3) uint8 BGR`` result.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError, UnknownNameError
from facecam.realtime.crops import Box
from facecam.realtime.processing import Halvings, box_slices, frame_levels, placed, upsample_mask_in_box
from facecam.realtime.tracking import HeldFace

MODES = ("overlay", "mask", "blur", "replace", "anonymize")
ANONYMIZE_STYLES = ("pixelate", "blur")
NAMED_COLORS = {
    "green": (0, 177, 64),
    "blue": (255, 71, 0),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}
#: blur_sigma's upper end: beyond it the background is one flat colour anyway
MAX_BLUR_SIGMA = 100
#: full-frame images kept per ComposeSettings (the replace background, the overlay tint at each frame
#: size): a few sizes in turn (a stream that changes resolution, a mode switch) are drawn without
#: rebuilding, while a folder of photos of a hundred sizes holds only the last few. Bound: this many
#: (H, W, 3) uint8 images of the sizes drawn most recently (4 x 36 MB at 4000x3000).
CACHE_ENTRIES = 4


class ImageCache:
    """Images by key, at most ``entries`` of them: the least recently used is dropped first.

    Thread-safe (the pipeline's compose thread and a caller's thread may draw with one settings).
    """

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._images: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], np.ndarray]) -> np.ndarray:
        """The image under ``key``, made by ``make()`` the first time (or again after it was dropped)."""
        with self._lock:
            image = self._images.get(key)
            if image is not None:
                self._images.move_to_end(key)
                return image
        image = make()  # outside the lock: a 4K resize should not hold up another thread's hit
        with self._lock:
            self._images[key] = image
            self._images.move_to_end(key)
            while len(self._images) > self.entries:
                self._images.popitem(last=False)
        return image

    def __len__(self) -> int:
        return len(self._images)

    @property
    def nbytes(self) -> int:
        """Bytes of the images held."""
        with self._lock:
            return sum(image.nbytes for image in self._images.values())


@dataclass
class ComposeSettings:
    """How to draw the result (defaults: overlay; blur sigma 8 px; pixelated anonymisation)."""

    mode: str = "overlay"
    background: np.ndarray | tuple[int, int, int] | None = None  # replace mode: BGR image or colour
    blur_sigma: float = 8.0  # background blur strength in full-resolution pixels
    anonymize_style: str = "pixelate"
    anonymize_margin: float = 0.15  # anonymize: each face's region grown this share of its size beyond its outline
    _cache: ImageCache = field(default_factory=ImageCache, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UnknownNameError(f"unknown mode {self.mode!r}; valid modes: {', '.join(MODES)}")
        if self.anonymize_style not in ANONYMIZE_STYLES:
            raise UnknownNameError(
                f"unknown anonymize style {self.anonymize_style!r}; valid: {', '.join(ANONYMIZE_STYLES)}"
            )
        # Checked here, not only by the CLI: a library caller's bad value would otherwise surface
        # as a raw OpenCV error from the first frame drawn.
        if not _is_number(self.anonymize_margin) or not 0 <= self.anonymize_margin <= 2:
            raise FacecamError(
                f"anonymize_margin must be within 0..2 (a share of the face's size), got {self.anonymize_margin!r}"
            )
        if not _is_number(self.blur_sigma) or not 0 < self.blur_sigma <= MAX_BLUR_SIGMA:
            raise FacecamError(
                f"blur_sigma must be above 0 and at most {MAX_BLUR_SIGMA} (pixels), got {self.blur_sigma!r}"
            )
        if self.background is None:  # the camera window may switch to replace mode later
            self.background = NAMED_COLORS["green"]
        check_background(self.background)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_background(background) -> None:
    """A BGR image ``(H, W, 3) uint8`` or a BGR colour of three 0..255 integers, else a FacecamError."""
    if isinstance(background, np.ndarray):
        if background.dtype != np.uint8 or background.ndim != 3 or background.shape[2] != 3 or 0 in background.shape:
            raise FacecamError(
                f"background image must be an (H, W, 3) uint8 BGR array, got {background.dtype} {background.shape}"
            )
        return
    colour = tuple(background) if isinstance(background, (tuple, list)) else ()
    if len(colour) != 3 or not all(_is_number(c) and float(c).is_integer() and 0 <= c <= 255 for c in colour):
        raise FacecamError(f"background colour must be three integers 0..255 (B, G, R), got {background!r}")


def parse_background(spec: str) -> np.ndarray | tuple[int, int, int]:
    """``--background``: an image path, a colour name, or ``#RRGGBB`` -> BGR image or BGR tuple."""
    if spec.lower() in NAMED_COLORS:
        return NAMED_COLORS[spec.lower()]
    if spec.startswith("#") and len(spec) == 7:
        try:
            r, g, b = (int(spec[i : i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
        else:
            return (b, g, r)
    path = Path(spec)
    if not path.is_file():
        raise FacecamError(
            f"background {spec!r} is neither an image file nor a colour ({', '.join(NAMED_COLORS)} or #RRGGBB)"
        )
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FacecamError(f"background image {path} cannot be read as an image")
    return image


def face_alpha_and_box(
    frame: np.ndarray,
    mask: np.ndarray,
    mode: str,
    faces: list[Box] = (),
    held: list[HeldFace] = (),
    settings: ComposeSettings | None = None,
    levels: Halvings | None = None,
    refine=None,
) -> tuple[np.ndarray, tuple[slice, slice] | None]:
    """The low-res mask as a full-resolution ``(H, W) float32`` 0..1 alpha for ``mode``
    (edge-aware), and the rows and columns outside which it is 0 (None: all 0), for
    :func:`~facecam.realtime.drawing.draw`: known from the mask grid, with no pass over the
    full-resolution alpha. ``refine``: see processing.upsample_mask (it may change the alpha
    only where it is not 0).

    In anonymize mode privacy errs on the side of covering (see :func:`mode_mask`): the mask
    grows by a couple of grid pixels, each face (``faces``, frame-pixel boxes) gets an ellipse
    reaching ``settings.anonymize_margin`` of its size beyond it, and each face just lost
    (``held``) stays covered by an ellipse at its last place and, under a pan, where the
    picture took it (HeldFace.boxes).
    """
    part, box = face_alpha_in_box(frame, mask, mode, faces, held, settings, levels, refine)
    return placed(part, box, frame.shape[:2]), box


def face_alpha_in_box(
    frame: np.ndarray,
    mask: np.ndarray,
    mode: str,
    faces: list[Box] = (),
    held: list[HeldFace] = (),
    settings: ComposeSettings | None = None,
    levels: Halvings | None = None,
    refine=None,
) -> tuple[np.ndarray | None, tuple[slice, slice] | None]:
    """:func:`face_alpha_and_box` as its box part: the alpha's ``(h, w) float32`` values inside the
    rows and columns outside which it is 0, and those (None, None: 0 everywhere), the same values,
    for :func:`~facecam.realtime.drawing.draw_in_box`. From 1280 px on no frame-sized array is
    made (see processing.upsample_mask_in_box)."""
    grid = mode_mask(mask, mode, frame.shape[:2], faces, held, settings)
    part, box = upsample_mask_in_box(grid, frame, frame_levels(levels, frame), refine)
    return part, box_slices(box)


def mode_mask(
    mask: np.ndarray,
    mode: str,
    frame_hw: tuple[int, int],
    faces: list[Box] = (),
    held: list[HeldFace] = (),
    settings: ComposeSettings | None = None,
) -> np.ndarray:
    """The grid mask ``mode`` upsamples: the mask itself, or in anonymize the mask grown and the
    faces' ellipses drawn (see :func:`face_alpha_and_box`)."""
    if mode != "anonymize":
        return mask
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    margin = settings.anonymize_margin if settings is not None else 0.0
    scale = mask.shape[1] / frame_hw[1]
    regions = [f.grown(1 + 2 * margin) for f in faces if margin > 0] + [
        b.grown(1 + 2 * margin) for h in held for b in h.boxes
    ]
    for box in regions:
        cx, cy = box.center
        axes = (max(1, round((box.x1 - box.x0) * scale / 2)), max(1, round((box.y1 - box.y0) * scale / 2)))
        cv2.ellipse(mask, (round(cx * scale), round(cy * scale)), axes, 0, 0, 360, 1.0, -1)
    return mask


def compose(frame: np.ndarray, mask: np.ndarray, settings: ComposeSettings) -> np.ndarray:
    """Draw ``settings.mode`` for one frame; see the module docstring for shapes."""
    from facecam.realtime.drawing import draw_in_box  # drawing builds on this module's settings

    part, box = face_alpha_in_box(frame, mask, settings.mode)
    return draw_in_box(frame, part, box, settings)

"""Output modes: what is drawn from a frame and its face mask.

``compose(frame, mask, settings)`` takes the ``(H, W, 3) uint8 BGR`` frame and the
``(h, w) float32`` 0..1 mask at inference resolution, upsamples the mask edge-aware to the
frame's size and returns the ``(H, W, 3) uint8 BGR`` result. Per-pixel blending runs in
OpenCV in 8-bit fixed point (``blend_uint8``), only in the box around the faces.
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
from facecam.realtime.processing import UNKNOWN_BOX, Halvings, box_slices, upsample_mask, upsampled_box
from facecam.realtime.tracking import HeldFace

MODES = ("overlay", "mask", "blur", "replace", "anonymize")
ANONYMIZE_STYLES = ("pixelate", "blur")
OVERLAY_BGR = (0, 220, 0)  # the classic translucent green face mask
OVERLAY_ALPHA = 0.4
NAMED_COLORS = {
    "green": (0, 177, 64),
    "blue": (255, 71, 0),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}
#: the halo-free blur's weight for face pixels (see halo_free_blur)
EVERYWHERE = 1e-3
#: halo_free_blur's most shrinking (a wide blur is then several small pixels wide)
MAX_BLUR_SHRINK = 16
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
        _check_background(self.background)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_background(background) -> None:
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


def alpha_box(alpha: np.ndarray) -> tuple[slice, slice] | None:
    """The rows and columns that hold every non-zero pixel of a full-resolution alpha, exactly
    (None when it is all 0): one comparison pass over the frame, far cheaper than blending it."""
    x, y, w, h = cv2.boundingRect(cv2.compare(alpha, 0, cv2.CMP_GT))
    if w == 0 or h == 0:
        return None
    return slice(y, y + h), slice(x, x + w)


def _blend(
    top: np.ndarray, bottom: np.ndarray, alpha: np.ndarray, bottom_is_ours: bool = False, box=UNKNOWN_BOX
) -> np.ndarray:
    """``top * alpha + bottom * (1 - alpha)``; uint8 images, ``alpha`` ``(H, W) float32``.

    Only the box around the face is blended (outside it alpha is 0: the result is ``bottom``),
    which saves most of the work when the face is a part of the frame. ``bottom_is_ours``: the
    caller made ``bottom`` for this call, so it is written in place instead of copied; ``box``:
    :func:`alpha_box` of ``alpha`` when the caller has it already (None: ``alpha`` is all 0)."""
    out = bottom if bottom_is_ours else bottom.copy()
    box = alpha_box(alpha) if box is UNKNOWN_BOX else box
    if box is not None:
        out[box] = blend_uint8(top[box], bottom[box], alpha[box])
    return out


def blend_uint8(top: np.ndarray, bottom: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``top * alpha + bottom * (1 - alpha)`` in 8-bit fixed point (within 1 grey level of the
    float blend, in half the time of ``cv2.blendLinear``): ``alpha`` ``(h, w) float32`` 0..1."""
    a8 = cv2.convertScaleAbs(alpha, alpha=255)
    a3 = cv2.merge([a8, a8, a8])
    kept = cv2.multiply(top, a3, scale=1 / 255)
    return cv2.add(kept, cv2.multiply(bottom, cv2.bitwise_not(a3), scale=1 / 255))


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize and centre-crop ``image`` to fill ``height x width`` without distortion."""
    scale = max(height / image.shape[0], width / image.shape[1])
    resized = cv2.resize(
        image,
        (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))),
        interpolation=cv2.INTER_AREA,
    )
    y, x = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[y : y + height, x : x + width])


def _background_image(settings: ComposeSettings, height: int, width: int) -> np.ndarray:
    """``settings.background`` covering ``height x width``, made once per size and background: a
    caller who sets another background (a library's settings change while running) gets it on
    the next frame, not the last one's cached copy. Another background means another object (or
    colour): an image array changed in place keeps its cached copy. A background set after the
    settings were made is checked here (a FacecamError, not an OpenCV error from the frame)."""
    bg = settings.background
    _check_background(bg)

    def make() -> np.ndarray:
        if isinstance(bg, np.ndarray):
            return _cover(bg, height, width)
        return np.full((height, width, 3), bg, np.uint8)

    which = _Same(bg) if isinstance(bg, np.ndarray) else tuple(int(c) for c in bg)
    return settings._cache.get(("background", height, width, which), make)


class _Same:
    """A cache key part that is one object, by identity (an image array is not hashable, and
    hashing its pixels every frame costs more than the blend). It holds the object, so its id
    cannot pass to a new array while the key is cached."""

    __slots__ = ("obj",)

    def __init__(self, obj) -> None:
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


def halo_free_blur(frame: np.ndarray, face: np.ndarray, sigma: float, levels: Halvings | None = None) -> np.ndarray:
    """Blur the background without smearing the face into it.

    A normalised convolution: blur(frame * background weight) / blur(background weight), so
    face pixels contribute nothing to the blurred background (no halo of face colour around
    the head). Runs at reduced resolution (the blur hides the difference) and is upsampled.
    ``frame`` ``(H, W, 3) uint8``, ``face`` ``(H, W) float32`` 0..1 -> ``(H, W, 3) uint8``;
    ``levels``: the frame's :class:`Halvings` when the caller has them.
    """
    height, width = frame.shape[:2]
    # Shrunk by sigma itself: the blur is then one small pixel wide, and a Gaussian of sigma s
    # passes almost nothing a grid of s pixels cannot carry (0.7% at its Nyquist frequency), so
    # the bilinear upsampling loses nothing the eye sees. Against the earlier sigma / 2, the
    # background of 720p talking heads moved by 1.1 grey levels on average (d13; 99th percentile
    # 6) and 0.3 (d3), for 0.5 ms less a frame.
    factor = max(1, min(MAX_BLUR_SHRINK, int(sigma)))
    small_size = (max(1, width // factor), max(1, height // factor))
    small = (levels or Halvings(frame)).shrunk(small_size)
    # the background's weight at the blur's resolution: the face at each small pixel's centre (a
    # bilinear resize read the whole full-resolution alpha, 0.4 ms at 720p), grown by one small
    # pixel, because a small pixel is the average of its whole footprint, and one whose centre is
    # background but whose corner is face would carry face colour out as a halo. EVERYWHERE, a
    # weight so small that it shows only where no background is near (a face filling the frame),
    # makes the quotient the plain blur there instead of 0/0.
    weight = cv2.dilate(cv2.resize(face, small_size, interpolation=cv2.INTER_NEAREST_EXACT), _GROW_ONE)
    cv2.subtract(1.0 + EVERYWHERE, weight, dst=weight)
    s = sigma / factor
    num = _gaussian(cv2.multiply(small, cv2.merge([weight] * 3), dtype=cv2.CV_32F), s)
    blurred = cv2.divide(num, cv2.merge([_gaussian(weight, s)] * 3))
    # blurs and quotients of non-negative pixels are non-negative: convertScaleAbs is a saturating
    # conversion to uint8 here, with no clip pass
    return cv2.resize(cv2.convertScaleAbs(blurred), (width, height), interpolation=cv2.INTER_LINEAR)


_GROW_ONE = np.ones((3, 3), np.uint8)


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur whose kernel reaches 3 sigma (OpenCV's own choice for float images reaches
    4, at twice the cost, for weights under 0.5% of the total)."""
    side = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (side, side), sigma)


def anonymized(frame: np.ndarray, style: str) -> np.ndarray:
    """The whole frame pixelated (blocks of ~1/40 of the short side) or strongly blurred."""
    height, width = frame.shape[:2]
    block = max(6, min(height, width) // 40)
    small = cv2.resize(frame, (max(1, width // block), max(1, height // block)), interpolation=cv2.INTER_AREA)
    if style == "blur":
        small = cv2.GaussianBlur(small, (0, 0), 1.5)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


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
    (edge-aware), and the rows and columns outside which it is 0 (None: all 0), for :func:`draw`:
    known from the mask grid, with no pass over the full-resolution alpha. ``refine``: see
    processing.upsample_mask (it may change the alpha only where it is not 0).

    In anonymize mode privacy errs on the side of covering (see :func:`mode_mask`): the mask
    grows by a couple of grid pixels, each face (``faces``, frame-pixel boxes) gets an ellipse
    reaching ``settings.anonymize_margin`` of its size beyond it, and each face just lost
    (``held``) stays covered by an ellipse at its last place.
    """
    grid = mode_mask(mask, mode, frame.shape[:2], faces, held, settings)
    box = upsampled_box(grid, frame.shape[:2])
    alpha = upsample_mask(grid, frame, _of_frame(levels, frame), refine)
    return alpha, box_slices(box)


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
    regions = [f.grown(1 + 2 * margin) for f in faces if margin > 0] + [h.box.grown(1 + 2 * margin) for h in held]
    for box in regions:
        cx, cy = box.center
        axes = (max(1, round((box.x1 - box.x0) * scale / 2)), max(1, round((box.y1 - box.y0) * scale / 2)))
        cv2.ellipse(mask, (round(cx * scale), round(cy * scale)), axes, 0, 0, 360, 1.0, -1)
    return mask


def draw(
    frame: np.ndarray,
    face: np.ndarray,
    settings: ComposeSettings,
    mode: str | None = None,
    levels: Halvings | None = None,
    box=UNKNOWN_BOX,
) -> np.ndarray:
    """``mode`` (default ``settings.mode``) drawn from the frame and its full-resolution face alpha.

    The pipeline passes the mode its frame was captured with, so a mode switch mid-run never
    pairs one mode's alpha (anonymize grows the face) with another's drawing. ``levels``: the
    frame's :class:`Halvings` when the caller has them; ``box``: the rows and columns outside
    which ``face`` is 0 (None: it is 0 everywhere), as :func:`face_alpha_and_box` gives them;
    by default they are measured on ``face``.
    """
    height, width = frame.shape[:2]
    mode = mode or settings.mode
    if mode == "mask":
        return cv2.cvtColor((face * 255 + 0.5).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if box is UNKNOWN_BOX:  # measured once, for the blend and the overlay's tint
        box = alpha_box(face)
    if mode == "overlay":
        tint = settings._cache.get(
            ("overlay", height, width), lambda: np.full((height, width, 3), OVERLAY_BGR, np.uint8)
        )
        tinted = frame.copy()  # the tint is computed where the face can be, the rest is the frame
        if box is None:
            return tinted
        tinted[box] = cv2.addWeighted(frame[box], 1 - OVERLAY_ALPHA, tint[box], OVERLAY_ALPHA, 0)
        return _blend(tinted, frame, face, box=box)
    if mode == "blur":
        background = halo_free_blur(frame, face, settings.blur_sigma, _of_frame(levels, frame))
        return _blend(frame, background, face, bottom_is_ours=True, box=box)
    if mode == "replace":
        return _blend(frame, _background_image(settings, height, width), face, box=box)
    return _blend(anonymized(frame, settings.anonymize_style), frame, face, box=box)


def _of_frame(levels: Halvings | None, frame: np.ndarray) -> Halvings | None:
    """``levels`` when they are this frame's halvings (a caller may pass what step 1 found in
    another frame), else None: they are then made from the frame."""
    return levels if levels is not None and levels.frame is frame else None


def compose(frame: np.ndarray, mask: np.ndarray, settings: ComposeSettings) -> np.ndarray:
    """Draw ``settings.mode`` for one frame; see the module docstring for shapes."""
    alpha, box = face_alpha_and_box(frame, mask, settings.mode)
    return draw(frame, alpha, settings, box=box)

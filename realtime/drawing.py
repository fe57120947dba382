"""Drawing a compose mode from a frame and its face alpha (see :mod:`facecam.realtime.compose`).

The alpha comes as its box part: the rows and columns outside which it is 0 and its values
inside them (:func:`draw_in_box`), or whole (:func:`draw`, which finds the box). Per-pixel
blending runs in OpenCV in 8-bit fixed point (:func:`blend_into`), only in that box: at 1080p a
frame-sized float alpha costs a 5 MB fill of zeros and a copy of the box a frame, which the
pipeline no longer makes.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from facecam.realtime.compose import ComposeSettings, check_background
from facecam.realtime.processing import UNKNOWN_BOX, Halvings, frame_levels

OVERLAY_BGR = (0, 220, 0)  # the classic translucent green face mask
OVERLAY_ALPHA = 0.4
#: the halo-free blur's weight for face pixels (see halo_free_blur)
EVERYWHERE = 1e-3
#: halo_free_blur's most shrinking (a wide blur is then several small pixels wide)
MAX_BLUR_SHRINK = 16

Slices = tuple[slice, slice]


def alpha_box(alpha: np.ndarray) -> tuple[slice, slice] | None:
    """The rows and columns that hold every non-zero pixel of a full-resolution alpha, exactly
    (None when it is all 0): one comparison pass over the frame, far cheaper than blending it."""
    x, y, w, h = cv2.boundingRect(cv2.compare(alpha, 0, cv2.CMP_GT))
    if w == 0 or h == 0:
        return None
    return slice(y, y + h), slice(x, x + w)


def _blend(
    top: np.ndarray, bottom: np.ndarray, part: np.ndarray | None, box: Slices | None, bottom_is_ours: bool = False
) -> np.ndarray:
    """``top * alpha + bottom * (1 - alpha)``; uint8 images, the alpha given as its box part:
    ``part`` ``(h, w) float32`` at the rows and columns ``box``, 0 elsewhere (None, None: 0
    everywhere, the result is ``bottom``). Only the box is blended, which saves most of the work
    when the face is a part of the frame. ``bottom_is_ours``: the caller made ``bottom`` for this
    call, so it is written in place instead of copied."""
    out = bottom if bottom_is_ours else bottom.copy()
    if box is not None:
        blend_into(top[box], out[box], part)
    return out


def blend_into(top: np.ndarray, bottom: np.ndarray, alpha: np.ndarray) -> None:
    """``bottom = top * alpha + bottom * (1 - alpha)``, in place, in 8-bit fixed point (within 1
    grey level of the float blend, in half the time of ``cv2.blendLinear``): ``alpha`` ``(h, w)
    float32`` 0..1; ``bottom`` may be a view (the face's box of the output frame). In place and
    with one temporary reused: at 1080p a face's box is 2.3 MB a colour image, and each pass over
    a new one cost more than its arithmetic (2.4 -> 2.0 ms for a 940x830 box)."""
    a8 = cv2.convertScaleAbs(alpha, alpha=255)
    a3 = cv2.merge([a8, a8, a8])
    kept = cv2.multiply(top, a3, scale=1 / 255)
    cv2.bitwise_not(a3, dst=a3)
    cv2.multiply(bottom, a3, dst=a3, scale=1 / 255)
    cv2.add(kept, a3, dst=bottom)


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
    check_background(bg)

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


def halo_free_blur(
    frame: np.ndarray, part: np.ndarray | None, box: Slices | None, sigma: float, levels: Halvings | None = None
) -> np.ndarray:
    """Blur the background without smearing the face into it.

    A normalised convolution: blur(frame * background weight) / blur(background weight), so
    face pixels contribute nothing to the blurred background (no halo of face colour around
    the head). Runs at reduced resolution (the blur hides the difference) and is upsampled.
    ``frame`` ``(H, W, 3) uint8`` -> ``(H, W, 3) uint8``; the face alpha as its box part (see
    :func:`_blend`); ``levels``: the frame's :class:`Halvings` when the caller has them.
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
    weight = cv2.dilate(_at_small_centres(part, box, (height, width), small_size), _GROW_ONE)
    cv2.subtract(1.0 + EVERYWHERE, weight, dst=weight)
    s = sigma / factor
    num = _gaussian(cv2.multiply(small, cv2.merge([weight] * 3), dtype=cv2.CV_32F), s)
    blurred = cv2.divide(num, cv2.merge([_gaussian(weight, s)] * 3))
    # blurs and quotients of non-negative pixels are non-negative: convertScaleAbs is a saturating
    # conversion to uint8 here, with no clip pass
    return cv2.resize(cv2.convertScaleAbs(blurred), (width, height), interpolation=cv2.INTER_LINEAR)


_GROW_ONE = np.ones((3, 3), np.uint8)


def _at_small_centres(
    part: np.ndarray | None, box: Slices | None, frame_hw: tuple[int, int], small_size: tuple[int, int]
) -> np.ndarray:
    """``(h, w) float32`` at ``small_size`` ``(w, h)``: the face alpha (its box part, see
    :func:`_blend`) at the full-resolution pixel each small pixel picks, exactly what an
    INTER_NEAREST_EXACT resize of the whole alpha gives, read from the box alone."""
    (height, width), (small_w, small_h) = frame_hw, small_size
    weight = np.zeros((small_h, small_w), np.float32)
    if box is None:
        return weight
    rows, cols = _nearest_sources(height, small_h), _nearest_sources(width, small_w)
    inside_rows = np.flatnonzero((rows >= box[0].start) & (rows < box[0].stop))
    inside_cols = np.flatnonzero((cols >= box[1].start) & (cols < box[1].stop))
    if inside_rows.size and inside_cols.size:  # the picks are in order: the inside ones are a block
        picked_rows = np.take(part, rows[inside_rows] - box[0].start, axis=0)
        picked = np.take(picked_rows, cols[inside_cols] - box[1].start, axis=1)
        weight[inside_rows[0] : inside_rows[-1] + 1, inside_cols[0] : inside_cols[-1] + 1] = picked
    return weight


@functools.lru_cache(maxsize=8)  # a few frame sizes: a folder of photos of many sizes holds 8
def _nearest_sources(big: int, small: int) -> np.ndarray:
    """The index along an axis of ``big`` pixels that OpenCV's INTER_NEAREST_EXACT resize to
    ``small`` picks for each of its pixels: asked of OpenCV itself (a resize of the indices), once
    per size, so the pick never drifts from the resize's own rounding. Read-only (it is shared)."""
    indices = np.arange(big, dtype=np.float32).reshape(big, 1)  # exact in float32 up to 2**24
    picked = cv2.resize(indices, (1, small), interpolation=cv2.INTER_NEAREST_EXACT).ravel().astype(np.intp)
    picked.flags.writeable = False
    return picked


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur whose kernel reaches 3 sigma (OpenCV's own choice for float images reaches
    4, at twice the cost, for weights under 0.5% of the total)."""
    side = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (side, side), sigma)


#: a face (its tracked box, neck included) is pixelated into about this many blocks across, at
#: most (to within the octave steps of MosaicBlock): with blocks of 1/40 of the frame's short side
#: alone, a webcam face at 720p (a 450 px box) got 22 blocks across its face, and its eyes, brows,
#: nose and mouth kept their shapes. The crowd clip's faces (boxes of 75-140 px at 640x360) keep the
#: frame's own 9 px blocks
FACE_BLOCKS = 12
#: a block size is kept until the one the faces ask for is this many octaves off (a face whose
#: size hovers at a step would make the whole mosaic's grid jump from frame to frame)
BLOCK_HYSTERESIS = 0.75


def frame_block(frame_hw: tuple[int, int]) -> int:
    """The smallest mosaic block for a frame: ~1/40 of its short side, at least 6 px."""
    return max(6, min(frame_hw) // 40)


class MosaicBlock:
    """The mosaic's block size in a stream: the frame's own (:func:`frame_block`) times the power of
    two that pixelates the largest face into about FACE_BLOCKS blocks across, changed only past
    BLOCK_HYSTERESIS octaves. Smaller faces get fewer, larger blocks: hidden all the same."""

    def __init__(self) -> None:
        self._octave: int | None = None

    def reset(self) -> None:
        self._octave = None

    def update(self, frame_hw: tuple[int, int], face_sides: list[float]) -> int:
        """The block in pixels for a frame of ``frame_hw`` whose tracked faces' boxes are
        ``face_sides`` px large (the held ones are left out: a held blob of a whole row or a lit
        ceiling is no face to size the blocks by)."""
        base = frame_block(frame_hw)
        wanted = max([side / FACE_BLOCKS for side in face_sides], default=base)
        octave = max(0.0, float(np.log2(max(wanted, base) / base)))
        if self._octave is None or abs(octave - self._octave) > BLOCK_HYSTERESIS:
            self._octave = round(octave)
        return base * 2**self._octave


def anonymized(frame: np.ndarray, style: str, block: int | None = None) -> np.ndarray:
    """The whole frame pixelated in blocks of ``block`` px (default :func:`frame_block`) or
    strongly blurred (as much)."""
    height, width = frame.shape[:2]
    block = block or frame_block((height, width))
    small = cv2.resize(frame, (max(1, width // block), max(1, height // block)), interpolation=cv2.INTER_AREA)
    if style == "blur":
        small = cv2.GaussianBlur(small, (0, 0), 1.5)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def draw(
    frame: np.ndarray,
    face: np.ndarray,
    settings: ComposeSettings,
    mode: str | None = None,
    levels: Halvings | None = None,
    box=UNKNOWN_BOX,
    block: int | None = None,
) -> np.ndarray:
    """``mode`` (default ``settings.mode``) drawn from the frame and its full-resolution face alpha
    ``face`` ``(H, W) float32``; ``box``: the rows and columns outside which ``face`` is 0 (None:
    it is 0 everywhere), as :func:`~facecam.realtime.compose.face_alpha_and_box` gives them; by
    default they are measured on ``face``. See :func:`draw_in_box`."""
    if box is UNKNOWN_BOX:  # measured once, for the blend and the overlay's tint
        box = alpha_box(face)
    return draw_in_box(frame, None if box is None else face[box], box, settings, mode, levels, block)


def draw_in_box(
    frame: np.ndarray,
    part: np.ndarray | None,
    box: Slices | None,
    settings: ComposeSettings,
    mode: str | None = None,
    levels: Halvings | None = None,
    block: int | None = None,
) -> np.ndarray:
    """``mode`` (default ``settings.mode``) drawn from the frame and its face alpha given as its
    box part: ``part`` ``(h, w) float32`` 0..1 at the rows and columns ``box``, 0 elsewhere
    (``None, None``: no face), as :func:`~facecam.realtime.compose.face_alpha_in_box` gives them.

    The pipeline passes the mode its frame was captured with, so a mode switch mid-run never
    pairs one mode's alpha (anonymize grows the face) with another's drawing. ``levels``: the
    frame's :class:`Halvings` when the caller has them; ``block``: anonymize's mosaic block (see
    MosaicBlock; default the frame's own).
    """
    height, width = frame.shape[:2]
    mode = mode or settings.mode
    if mode == "mask":
        out = np.zeros((height, width, 3), np.uint8)
        if box is not None:
            out[box] = cv2.cvtColor((part * 255 + 0.5).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        return out
    if mode == "overlay":
        tint = settings._cache.get(
            ("overlay", height, width), lambda: np.full((height, width, 3), OVERLAY_BGR, np.uint8)
        )
        tinted = frame.copy()  # the tint is computed where the face can be, the rest is the frame
        if box is None:
            return tinted
        tinted[box] = cv2.addWeighted(frame[box], 1 - OVERLAY_ALPHA, tint[box], OVERLAY_ALPHA, 0)
        return _blend(tinted, frame, part, box)
    if mode == "blur":
        background = halo_free_blur(frame, part, box, settings.blur_sigma, frame_levels(levels, frame))
        return _blend(frame, background, part, box, bottom_is_ours=True)
    if mode == "replace":
        return _blend(frame, _background_image(settings, height, width), part, box)
    return _blend(anonymized(frame, settings.anonymize_style, block), frame, part, box)

"""Temporal smoothing of the mask, and the flicker figure that measures it.

Users of other tools complain about two things: edges that flicker on a still head, and
smoothing that trails behind a moving one. :class:`TemporalSmoother` blends the new mask
with the previous one only where the image did not change, so a still scene is steady and
a moving head is followed at once; a scene cut resets it.
"""

from __future__ import annotations

import cv2
import numpy as np

from facecam.realtime.processing import UNKNOWN_BOX


class TemporalSmoother:
    """Motion-aware exponential smoothing; the state is this object, passed explicitly.

    ``strength`` (0..1, default 0.6): the weight of the previous mask where the image is
    still; 0 turns smoothing off. ``motion_scale`` (default 10 grey levels): a pixel whose
    brightness changed this much or more since the last frame takes the new mask as it is.
    ``scene_cut`` (default 40 grey levels): a mean change this large resets the state.
    """

    def __init__(self, strength: float = 0.6, motion_scale: float = 10.0, scene_cut: float = 40.0) -> None:
        if not 0 <= strength <= 1:
            raise ValueError(f"smoothing strength must be within 0..1, got {strength}")
        self.strength = strength
        self.motion_scale = motion_scale
        self.scene_cut = scene_cut
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (a new run; a scene cut resets by itself)."""
        self._mask: np.ndarray | None = None
        self._gray: np.ndarray | None = None

    def warp(self, matrix: np.ndarray) -> None:
        """Move the remembered mask and frame by a ``(2, 3)`` affine ``matrix`` (old pixels -> new
        pixels): a face's crop follows the face, and its memory moves with the crop."""
        if self._mask is None:
            return
        h, w = self._mask.shape
        self._mask = cv2.warpAffine(self._mask, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
        self._gray = cv2.warpAffine(self._gray, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)

    def update(self, mask: np.ndarray, gray: np.ndarray) -> np.ndarray:
        """Smooth one frame's mask.

        ``mask``: ``(h, w) float32`` 0..1; ``gray``: ``(h, w) uint8`` the frame at the same
        size. Returns the smoothed ``(h, w) float32`` mask.
        """
        if self.strength == 0:
            return mask
        previous, previous_gray = self._mask, self._gray
        self._gray = gray
        if previous is None or previous.shape != mask.shape:
            self._mask = mask
            return mask
        change = cv2.absdiff(gray, previous_gray)
        if float(change.mean()) > self.scene_cut:
            self._mask = mask
            return mask
        change = cv2.blur(change, (3, 3)).astype(np.float32)
        keep = self.strength * np.clip(1.0 - change * (1.0 / self.motion_scale), 0.0, 1.0)
        out = mask + keep * (previous - mask)
        self._mask = out
        return out


class EdgeHold:
    """Hysteresis on the edge of the merged face mask where the picture stands still.

    Per-face smoothing runs in each face's crop, which moves with the face, and the crop's mask
    is resampled onto the frame's grid every frame: an edge pixel near one half then flips
    between face and not-face on a still head, which is the flicker users see. Here a pixel that
    was face stays face until its value falls ``band`` below one half, and one that was not
    stays out until it rises ``band`` above, but only where the frame's grey did not change by
    ``motion_scale`` levels or more (a moving head's edge follows at once, with no lag). A pixel
    held keeps its last value (not just one half: the edge-aware upsampling would flip it again at
    full resolution). ``band`` 0 turns it off. On d3.mp4 at the default smoothing (band 0.2):
    flicker of the mask grid 0.0116 -> 0.0097, of the full-resolution mask video 0.0116 -> 0.0107.
    """

    def __init__(self, band: float, motion_scale: float = 10.0) -> None:
        self.band = checked_band(band)
        self.motion_scale = motion_scale
        self.reset()

    def reset(self) -> None:
        """Forget the last frame (a new stream, a scene cut)."""
        self._mask: np.ndarray | None = None
        self._gray: np.ndarray | None = None
        #: where the picture stood still at the last update, on the mask's grid (None when it was
        #: not measured: the first frame, a cut, no hold); the full-resolution hold reads it too
        self.still: np.ndarray | None = None

    def update(self, mask: np.ndarray, gray: np.ndarray) -> np.ndarray:
        """``mask`` ``(h, w) float32`` 0..1 with its still edge pixels held; ``gray`` ``(h, w) uint8``
        is the frame at the mask's size. Returns a new array when anything is held."""
        previous, previous_gray = self._mask, self._gray
        self._gray, self.still = gray, None
        if self.band == 0 or previous is None or previous.shape != mask.shape or previous_gray.shape != gray.shape:
            self._mask = mask
            return mask
        self.still = still_map(gray, previous_gray, self.motion_scale)
        mask = held_edges(mask, previous, self.still, self.band)
        self._mask = mask
        return mask


def checked_band(band: float) -> float:
    """A hold's band, or a ValueError: it must be within 0 (off) .. 0.5."""
    if not 0 <= band < 0.5:
        raise ValueError(f"edge hold band must be within 0..0.5, got {band}")
    return band


def still_map(gray: np.ndarray, previous_gray: np.ndarray, motion: float) -> np.ndarray:
    """``(h, w) bool``: where the grey changed by less than ``motion`` levels (3x3 average)."""
    return cv2.blur(cv2.absdiff(gray, previous_gray), (3, 3)) < motion


def held_edges(
    mask: np.ndarray,
    previous: np.ndarray,
    still: np.ndarray,
    band: float,
    scale: tuple[float, float] = (1.0, 1.0),
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """``mask`` ``(h, w) float32`` with each pixel that crossed one half by less than ``band`` since
    ``previous`` (same shape), where the picture is ``still``, back at its ``previous`` value (a
    new array when anything is held). ``still`` may be coarser: its pixel for mask pixel
    ``(x, y)`` is at ``((x + origin_x + 0.5) * scale_x, (y + origin_y + 0.5) * scale_y)``, rounded down."""
    # whole-array OpenCV passes, not a look at the band's pixels by index: at 720p a webcam
    # face's soft band holds ~50k pixels, and indexing them cost 4x these passes
    held = cv2.bitwise_xor(cv2.compare(mask, 0.5, cv2.CMP_GE), cv2.compare(previous, 0.5, cv2.CMP_GE))
    near = cv2.compare(mask, 0.5 - band, cv2.CMP_GE)  # within [0.5 - band, 0.5 + band)
    cv2.bitwise_and(near, cv2.compare(mask, 0.5 + band, cv2.CMP_LT), dst=near)
    cv2.bitwise_and(held, near, dst=held)
    cv2.bitwise_and(held, still_at(still, mask.shape, scale, origin), dst=held)  # still is 0 or 1: non-zero stays
    if not cv2.countNonZero(held):
        return mask
    out = mask.copy()
    cv2.copyTo(previous, held, out)
    return out


def still_at(
    still: np.ndarray, shape: tuple[int, int], scale: tuple[float, float], origin: tuple[int, int]
) -> np.ndarray:
    """``shape`` ``uint8``: the coarser ``(h, w) bool`` map ``still`` read at each pixel of an
    array of ``shape`` (the mapping of :func:`held_edges`), non-zero where still."""
    height, width = shape
    rows = np.minimum(((np.arange(height) + origin[1] + 0.5) * scale[1]).astype(np.intp), still.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + origin[0] + 0.5) * scale[0]).astype(np.intp), still.shape[1] - 1)
    # rows first, then columns: two gathers of whole rows are 4x one gather of every pixel
    return np.take(np.take(still.view(np.uint8), rows, axis=0), cols, axis=1)


class AlphaHold:
    """The edge hold again, on the upsampled alpha inside the faces' region (at the size the
    edge-aware upsampling filters at: the frame's own, or its halving of 640 to 1,279 px for 720p
    and up, see processing.ALPHA_SIDE).

    The grid's :class:`EdgeHold` keeps the low-resolution mask still, but the edge-aware
    upsampling follows the frame's own noise, so a still edge still flickered at full resolution
    (d3.mp4, full-resolution alpha: 0.0106 -> 0.0093). Same band as the grid's, and where the
    picture stands still is the grid hold's own measure (``EdgeHold.still``: none after a
    scene cut, so nothing is held there). Only inside ``region`` (one box around the faces,
    grown), so the cost grows with the faces and their spread, not the frame's size.
    """

    def __init__(self, band: float) -> None:
        self.band = checked_band(band)
        self.reset()

    def reset(self) -> None:
        """Forget the last frame (a new stream)."""
        self._alpha: np.ndarray | None = None  # the last frame's alpha in its region
        self._region: tuple[int, int, int, int] | None = None
        self._shape: tuple[int, int] | None = None

    def update(
        self, alpha: np.ndarray, still: np.ndarray | None, region: tuple[int, int, int, int] | None
    ) -> np.ndarray:
        """``alpha`` ``(H, W) float32`` with the still edge pixels inside ``region`` ``(x0, y0,
        x1, y1)`` (the alpha's pixels; None: no face) held; ``still`` ``(h, w) bool``: where the picture
        stood still since the last frame, on any smaller grid (None: nowhere). Holds only where
        this region and the last frame's overlap; changes ``alpha`` in place."""
        if self.band == 0 or region is None:
            self.reset()
            return alpha
        x0, y0, x1, y1 = region
        if still is not None and self._region is not None and self._shape == alpha.shape[:2]:
            px0, py0, px1, py1 = self._region
            ix0, iy0, ix1, iy1 = max(x0, px0), max(y0, py0), min(x1, px1), min(y1, py1)
            if ix1 > ix0 and iy1 > iy0:
                before = (slice(iy0 - py0, iy1 - py0), slice(ix0 - px0, ix1 - px0))
                scale = (still.shape[1] / alpha.shape[1], still.shape[0] / alpha.shape[0])
                alpha[iy0:iy1, ix0:ix1] = held_edges(
                    alpha[iy0:iy1, ix0:ix1], self._alpha[before], still, self.band, scale, (ix0, iy0)
                )
        self._alpha = alpha[y0:y1, x0:x1].copy()
        self._region, self._shape = region, alpha.shape[:2]
        return alpha


class FlickerMeter:
    """Share of the face mask that toggles per frame: mean toggled pixels / mean face area.

    The same definition as ``../shared/anchors/mediapipe_anchor.py``, so figures compare.
    Masks are binarised at 0.5 (float 0..1) or 128 (uint8).
    """

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None  # the last binary mask inside its box
        self._previous_box: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._previous_shape: tuple[int, int] | None = None
        self._toggles: list[float] = []
        self._areas: list[float] = []

    def add(self, mask: np.ndarray, box=UNKNOWN_BOX) -> None:
        """One frame's mask. ``box``: the rows and columns outside which it is 0, None when it is 0
        everywhere (as compose.face_alpha_and_box gives them; by default the whole mask is
        looked at), so a pipeline that measures flicker spends its time on the face, not the frame."""
        if box is UNKNOWN_BOX:
            box = (slice(0, mask.shape[0]), slice(0, mask.shape[1]))
        self.add_in_box(None if box is None else mask[box], box, mask.shape[:2])

    def add_in_box(self, part: np.ndarray | None, box: tuple[slice, slice] | None, frame_hw: tuple[int, int]) -> None:
        """One frame's mask of ``frame_hw`` given as its box part: ``part`` at the rows and columns
        ``box``, 0 elsewhere (None, None: 0 everywhere), as compose.face_alpha_in_box gives them."""
        size = frame_hw[0] * frame_hw[1]
        y0, y1, x0, x1 = (0, 0, 0, 0) if box is None else (box[0].start, box[0].stop, box[1].start, box[1].stop)
        level = 128 if part is not None and part.dtype == np.uint8 else 0.5
        binary = cv2.compare(part, level, cv2.CMP_GE) if part is not None and part.size else np.zeros((0, 0), np.uint8)
        self._areas.append(cv2.countNonZero(binary) / size if binary.size else 0.0)
        if self._previous is not None and self._previous_shape == tuple(frame_hw):
            self._toggles.append(_toggled(self._previous, self._previous_box, binary, (y0, y1, x0, x1)) / size)
        self._previous, self._previous_box, self._previous_shape = binary, (y0, y1, x0, x1), tuple(frame_hw)

    @property
    def value(self) -> float:
        """The flicker figure (0 for fewer than two frames or no face at all)."""
        area = float(np.mean(self._areas)) if self._areas else 0.0
        return float(np.mean(self._toggles)) / area if self._toggles and area > 0 else 0.0


def _toggled(before: np.ndarray, before_box: tuple[int, int, int, int], now: np.ndarray, now_box) -> int:
    """Pixels that differ between two binary masks, each given inside its box ``(y0, y1, x0, x1)``
    (0 outside it): compared over the union of the boxes."""
    boxes = [b for b, m in ((before_box, before), (now_box, now)) if m.size]
    if not boxes:
        return 0
    y0, x0 = min(b[0] for b in boxes), min(b[2] for b in boxes)
    y1, x1 = max(b[1] for b in boxes), max(b[3] for b in boxes)
    union = []
    for (by0, by1, bx0, bx1), m in ((before_box, before), (now_box, now)):
        whole = np.zeros((y1 - y0, x1 - x0), np.uint8)
        if m.size:
            whole[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0] = m
        union.append(whole)
    return cv2.countNonZero(cv2.bitwise_xor(union[0], union[1]))


#: the alpha hold's region: the faces' boxes (each the box of its mask above one half) grown by this
#: factor, enough for the soft band around one half at the edge
REGION_GROWTH = 1.1


def faces_region(
    faces, frame_hw: tuple[int, int], growth: float = REGION_GROWTH, image_hw: tuple[int, int] | None = None
) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` integer pixels covering every face box in ``faces`` (frame pixels)
    grown by ``growth``, inside the frame; None without faces. In the pixels of ``image_hw``, the
    frame resized to that size, when given (an alpha made at one of the frame's halvings)."""
    if not faces:
        return None
    height, width = image_hw or frame_hw
    sx, sy = width / frame_hw[1], height / frame_hw[0]
    grown = [face.grown(growth) for face in faces]
    x0, y0 = max(0, int(min(b.x0 for b in grown) * sx)), max(0, int(min(b.y0 for b in grown) * sy))
    x1 = min(width, int(np.ceil(max(b.x1 for b in grown) * sx)))
    y1 = min(height, int(np.ceil(max(b.y1 for b in grown) * sy)))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

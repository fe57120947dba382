"""Pure pre- and post-processing around the model: sizes, tensors, probabilities, upsampling.

Everything here is a pure function of its arguments; shapes, dtypes and colour order are in
each docstring. The numbers (size, colour order, mean/std, face classes) come from the
model card, never from this file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import cv2
import numpy as np

from facecam.model_card import ModelCard

#: inference sides are rounded to this multiple (the models downsample by 32)
SIZE_MULTIPLE = 32
#: guided-filter settings for the edge-aware upsampling (radius in low-res pixels, regulariser)
GUIDE_RADIUS = 1
GUIDE_EPS = 4e-3
#: mask values within this distance of 0 or 1 after upsampling are snapped to 0 or 1
SNAP = 0.02
#: the guided filter works at the frame's smallest halving whose long side is at least this, and
#: its alpha is resized to the frame from there: at 720p and 1080p it sees the frame at 640 and
#: 960 px, the edge lands within a pixel of where it did, and it costs a quarter (d3.mp4 at 720p:
#: 3.3 -> 1.0 ms a frame). Frames of up to 1,279 px are filtered at their own size.
ALPHA_SIDE = 640
#: a model input that averages darker than DARK_MEAN grey levels (all of it) is lifted by the gamma
#: (at least MIN_LIFT_GAMMA) that brings that average to DARK_TARGET; one darker than DARKEST
#: (0..1, a black frame) is left as it is (see lifted_if_dark; tuned on lfw-parts/val)
DARK_MEAN = 70
DARK_TARGET = 110
MIN_LIFT_GAMMA = 0.35
DARKEST = 0.005


def inference_size(frame_hw: tuple[int, int], card: ModelCard) -> tuple[int, int]:
    """``(h, w)`` to run the model at for a frame of ``frame_hw = (H, W)``.

    A fixed-size model gets its card size. A dynamic one keeps the frame's aspect ratio with
    the longer side at the card's longer side (see :func:`scaled_size`), so a portrait phone
    clip is not squashed into a square.
    """
    if not card.dynamic_size:
        return tuple(card.input_size)
    return scaled_size(frame_hw, max(card.input_size))


def scaled_size(frame_hw: tuple[int, int], long_side: float) -> tuple[int, int]:
    """``(h, w)``: the frame's aspect ratio with its longer side at ``long_side``, each side a
    multiple of 32 (the models downsample by 32), at least 32."""
    height, width = frame_hw
    scale = long_side / max(height, width)

    def snap(v: float) -> int:
        return max(SIZE_MULTIPLE, int(v * scale / SIZE_MULTIPLE + 0.5) * SIZE_MULTIPLE)

    return snap(height), snap(width)


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` area-averaged down to ``size`` ``(w, h)``, fast: exact halvings first (OpenCV has
    a fast path for a 2x2 average, 4x faster than its general area resize at 1080p), then one area
    resize for the rest. Never enlarges past a plain resize."""
    return Halvings(image).shrunk(size)


class Halvings:
    """A frame and its exact halvings (2x2 averages), each made once, when first needed.

    The coarse finder pass, the guided upsampling's guide and the background blur all want the
    frame smaller; at 720p the first halving alone costs as much as all the rest, so one frame's
    halvings are made once and shared (one object per frame, passed along with its faces).
    ``shrunk(size)`` gives exactly what :func:`shrink` gives. Safe to use from several threads.
    """

    def __init__(self, frame: np.ndarray) -> None:
        self._levels = [frame]
        self._grays: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def frame(self) -> np.ndarray:
        return self._levels[0]

    def level(self, count: int) -> np.ndarray:
        """The frame halved ``count`` times (each side at least 1 pixel)."""
        with self._lock:
            levels = self._levels
            while len(levels) <= count:
                levels.append(_halved(levels[-1]))
            return levels[count]

    def shrunk(self, size: tuple[int, int]) -> np.ndarray:
        """The frame area-averaged down to ``size`` ``(w, h)`` (see :func:`shrink`)."""
        image = self.level(self._halvings_for(size))
        if image.shape[1] == size[0] and image.shape[0] == size[1]:
            return image
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def shrunk_gray(self, size: tuple[int, int]) -> np.ndarray:
        """The frame in grey, area-averaged down to ``size`` ``(w, h)``: converted to grey before
        the last, uneven area resize (which costs three times as much on three channels). Made
        once per size (the finder's edge hold and the upsampling's guide both want the grid's)."""
        with self._lock:
            gray = self._grays.get(size)
        if gray is not None:
            return gray
        gray = cv2.cvtColor(self.level(self._halvings_for(size)), cv2.COLOR_BGR2GRAY)
        if gray.shape[1] != size[0] or gray.shape[0] != size[1]:
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            return self._grays.setdefault(size, gray)

    def _halvings_for(self, size: tuple[int, int]) -> int:
        """How many exact halvings a shrink to ``size`` ``(w, h)`` starts with."""
        w, h = size
        height, width = self.frame.shape[:2]
        count = 0
        while width >= 2 * w and height >= 2 * h:
            width, height, count = width // 2, height // 2, count + 1
        return count


def frame_levels(levels: Halvings | None, frame: np.ndarray) -> Halvings | None:
    """``levels`` when they are this frame's halvings (a caller may pass what step 1 found in
    another frame), else None: they are then made from the frame."""
    return levels if levels is not None and levels.frame is frame else None


def _halved(image: np.ndarray) -> np.ndarray:
    """A 2x2 average: OpenCV's area path for even sides (its fast path, 0.7 instead of 1.15 ms at
    1080p); a bilinear resize to half otherwise (the same pixels where both apply, and what
    facecam always did for odd sides)."""
    height, width = image.shape[:2]
    even = height % 2 == 0 and width % 2 == 0
    size = (max(1, width // 2), max(1, height // 2))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if even else cv2.INTER_LINEAR)


def preprocess(frame: np.ndarray, size: tuple[int, int], card: ModelCard) -> np.ndarray:
    """``(H, W, 3) uint8 BGR`` -> ``(1, 3, h, w) float32`` in the card's colour order.

    Raw 0..255 values when the model normalises in its graph, else ``(x/255 - mean)/std``.
    A dark input is lifted first (:func:`lifted_if_dark`).
    """
    h, w = size
    small = lifted_if_dark(shrink(frame, (w, h)))
    if card.color_order == "RGB":
        small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
    x = small.astype(np.float32)
    if not card.normalization_in_graph:
        x = (x / 255.0 - np.asarray(card.mean, np.float32)) / np.asarray(card.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def mirror_averaged(infer: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> np.ndarray:
    """``infer``'s ``(N, h, w)`` look at a ``(N, 3, h, w)`` batch averaged with its look at the
    mirror images (one run of 2N). FaceFinder does it for a photo's first looks (all its faces),
    where time is less short: on ``lfw-parts/val`` IoU 0.8994 -> 0.9010, not-face painted on the
    ``person`` validation photos 0.0059 -> 0.0050, the same faces found on the validation photos
    (60 of 63, 31 of 32), for 10-30% more time a photo. Mirroring the full-frame pass as well
    lost 2 of those faces."""
    count = len(batch)
    looks = infer(np.concatenate([batch, batch[..., ::-1]]))
    return 0.5 * (looks[:count] + looks[count:, :, ::-1])


def black_input(card: ModelCard) -> np.ndarray:
    """``(3,) float32``: what :func:`preprocess` makes of a black pixel, for this card's model."""
    if card.normalization_in_graph:
        return np.zeros(3, np.float32)
    return -np.asarray(card.mean, np.float32) / np.asarray(card.std, np.float32)


def lifted_if_dark(image: np.ndarray) -> np.ndarray:
    """``(h, w, 3) uint8`` as the model should see it: when it averages darker than DARK_MEAN grey
    levels (a dim room), every pixel goes through the gamma that brings that average to
    DARK_TARGET (the model was trained on faces in ordinary light); otherwise the image itself,
    untouched. The whole input is measured, not its middle: a dark-skinned face in ordinary
    light has a lit background around it and is left alone.

    On `lfw-parts/val` (the split it was tuned on): dim 0.901 -> 0.906, very dim 0.836 -> 0.885,
    backlit 0.878 -> 0.880, photos as they are 0.9109 -> 0.9110."""
    if image.size == 0:
        return image
    mean = float(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).mean()) / 255.0
    if mean * 255 >= DARK_MEAN or mean <= DARKEST:
        return image
    gamma = max(MIN_LIFT_GAMMA, float(np.log(DARK_TARGET / 255.0) / np.log(mean)))
    table = np.clip((np.arange(256) / 255.0) ** gamma * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(image, table)


def upsample_mask(
    mask: np.ndarray,
    frame: np.ndarray,
    levels: Halvings | None = None,
    refine: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Edge-aware upsampling: ``(h, w) float32`` 0..1 mask -> ``(H, W) float32`` at the frame's size.

    A fast guided filter (He & Sun, 2015): the linear model mask = a * gray + b is fitted
    at low resolution against the downsized frame, its coefficients upsampled bilinearly
    and applied to the full-resolution gray frame, so the mask edge snaps to the image edge
    instead of a blurry bilinear staircase. ``frame`` is ``(H, W, 3) uint8 BGR``; ``levels``: its
    :class:`Halvings` when the caller has them (the guide is made from them).

    A frame of twice ALPHA_SIDE or more is filtered at its halving of about that size and the
    alpha resized from there (see ALPHA_SIDE). ``refine``, when given, takes the alpha at the size it
    was filtered at, before that resize, and returns it changed (the edge hold, at a quarter of
    the pixels).
    """
    part, box = upsample_mask_in_box(mask, frame, levels, refine)
    return placed(part, box_slices(box), frame.shape[:2])


def placed(part: np.ndarray | None, box: tuple[slice, slice] | None, shape: tuple[int, int]) -> np.ndarray:
    """The ``shape`` float32 alpha whose part inside ``box`` is ``part`` and which is 0 elsewhere
    (``None, None``: 0 everywhere): the whole alpha from what :func:`upsample_mask_in_box` gives."""
    out = zeros_outside(shape, None if box is None else (box[0].start, box[0].stop, box[1].start, box[1].stop))
    if box is not None:
        out[box] = part
    return out


def upsample_mask_in_box(
    mask: np.ndarray,
    frame: np.ndarray,
    levels: Halvings | None = None,
    refine: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray | None, tuple[int, int, int, int] | None]:
    """:func:`upsample_mask`'s alpha inside :func:`upsampled_box` only, and that box
    ``(y0, y1, x0, x1)``; outside it the alpha is exactly 0 (``(None, None)``: 0 everywhere).
    For a caller that draws in the box: from 1280 px on (filtered at a halving) the frame-sized
    array would cost a fill of the rest (at 1080p 5 MB a frame) and a copy of the box; a smaller
    frame is filtered at its own size, and its part is a view of that array."""
    levels = levels or Halvings(frame)
    count = alpha_level(frame.shape[:2])
    filtered = _guided_upsample(mask, levels.level(count), levels)
    if refine is not None:  # refined even when empty: the edge hold then forgets the last frame's edge
        filtered = refine(filtered)
    box = upsampled_box(mask, frame.shape[:2])
    if box is None:
        return None, None
    y0, y1, x0, x1 = box
    return (filtered[y0:y1, x0:x1] if count == 0 else _upsampled(filtered, frame.shape[:2], box)), box


def zeros_outside(shape: tuple[int, int], box: tuple[int, int, int, int] | None) -> np.ndarray:
    """A ``shape`` float32 array, 0 outside ``box`` (``(y0, y1, x0, x1)``; None: 0 everywhere)
    and unset inside it, for the caller to write. A frame-sized ``np.zeros`` is a memset of all of
    it (8 MB at 1080p) once the allocator reuses freed memory (facecam.realtime.memory); the face's
    box, a third of a webcam frame, is written anyway."""
    if box is None:
        return np.zeros(shape, np.float32)
    y0, y1, x0, x1 = box
    out = np.empty(shape, np.float32)
    out[:y0] = 0
    out[y1:] = 0
    out[y0:y1, :x0] = 0
    out[y0:y1, x1:] = 0
    return out


def alpha_level(frame_hw: tuple[int, int]) -> int:
    """How many times the frame is halved before the edge-aware upsampling: while its long side
    stays at least ALPHA_SIDE."""
    long_side, count = max(frame_hw), 0
    while long_side // 2 >= ALPHA_SIDE:
        long_side, count = long_side // 2, count + 1
    return count


def _guided_upsample(mask: np.ndarray, frame: np.ndarray, levels: Halvings) -> np.ndarray:
    """The guided filter of :func:`upsample_mask` at the size of ``frame`` (the frame itself or one
    of its halvings; ``levels``: the frame's, for the guide)."""
    h, w = mask.shape
    big_h, big_w = frame.shape[:2]
    box = upsampled_box(mask, (big_h, big_w))
    out = zeros_outside((big_h, big_w), box)
    if box is None:
        return out  # no face: nothing to upsample
    # Only the face's surroundings are computed at the image's size: outside the box the
    # filter's output is exactly 0 (see support_box), and a webcam face is a third of the frame.
    fy0, fy1, fx0, fx1 = box
    gray = cv2.cvtColor(frame[fy0:fy1, fx0:fx1], cv2.COLOR_BGR2GRAY)
    a, b = _guide_coefficients(mask, levels.shrunk_gray((w, h)))
    roi = out[fy0:fy1, fx0:fx1]
    cv2.multiply(_upsampled(a, (big_h, big_w), (fy0, fy1, fx0, fx1)), gray, dst=roi, dtype=cv2.CV_32F)
    cv2.add(roi, _upsampled(b, (big_h, big_w), (fy0, fy1, fx0, fx1)), dst=roi)
    np.clip(roi, 0.0, 1.0, out=roi)
    return out


def _guide_coefficients(mask: np.ndarray, small_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's ``a`` and ``b`` on the mask grid (``small_gray``: the frame there),
    stretched (see SNAP) and scaled for a 0..255 gray.

    Computed in a window around the face only, the whole grid's but for rounding (under 1e-4 of
    the alpha; on the 720p and 512 px test clips the alpha came out bit for bit the same): within
    3r + 2 of the mask's support the window holds every neighbour the two box blurs read, and
    past r of the support the mask's mean and its covariance with the guide are 0, so ``a`` is 0
    and ``b`` the stretch's constant there, whatever the guide (the whole grid's own ``a`` there
    is a rounding residue, and its alpha clipped to 0 all the same). A webcam face's window is
    under half the grid: 0.1-0.2 ms a frame."""
    h, w = mask.shape
    scale = 1.0 / (1.0 - 2 * SNAP)
    a = np.zeros((h, w), np.float32)
    b = np.full((h, w), -SNAP * scale, np.float32)
    window = support_box(mask, 3 * GUIDE_RADIUS + 2)
    if window is None:
        return a, b
    y0, y1, x0, x1 = window
    p = mask[y0:y1, x0:x1]
    guide = small_gray[y0:y1, x0:x1].astype(np.float32) * (1 / 255)
    k = (2 * GUIDE_RADIUS + 1, 2 * GUIDE_RADIUS + 1)
    mean_i = cv2.blur(guide, k)
    mean_p = cv2.blur(p, k)
    cov_ip = cv2.blur(guide * p, k) - mean_i * mean_p
    var_i = cv2.blur(guide * guide, k) - mean_i * mean_i
    a_fit = cov_ip / (var_i + GUIDE_EPS)
    b_fit = mean_p - a_fit * mean_i
    # Stretch [SNAP, 1 - SNAP] to [0, 1]: the filter's faint residue far from any edge becomes an
    # exact 0 or 1, so the background is untouched and the face exactly kept. Bilinear
    # upsampling is linear, so the stretch (and the 1/255 of the gray) is applied at low resolution.
    a[y0:y1, x0:x1] = cv2.blur(a_fit, k) * (scale / 255)
    b[y0:y1, x0:x1] = cv2.blur(b_fit, k) * scale - SNAP * scale
    return a, b


#: a ``box`` argument's default where a box may be given (drawing.draw, FlickerMeter.add): not
#: known, so the alpha is looked at whole
UNKNOWN_BOX = object()


def box_slices(box: tuple[int, int, int, int] | None) -> tuple[slice, slice] | None:
    """``(y0, y1, x0, x1)`` as the ``(rows, columns)`` slices that index it (None stays None)."""
    return None if box is None else (slice(box[0], box[1]), slice(box[2], box[3]))


def upsampled_box(mask: np.ndarray, frame_hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)``: the frame pixels (of a frame of ``frame_hw``) that
    :func:`upsample_mask` computes for ``mask``; its alpha is exactly 0 outside them. None when
    the mask is empty. The compose step blends only there, with no pass over the whole alpha."""
    box = support_box(mask, 2 * GUIDE_RADIUS + 2)
    if box is None:
        return None
    (h, w), (big_h, big_w) = mask.shape, frame_hw
    y0, y1, x0, x1 = box
    return (y0 * big_h) // h, min(big_h, -(-y1 * big_h // h)), (x0 * big_w) // w, min(big_w, -(-x1 * big_w // w))


def support_box(mask: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)``: the bounding box of ``mask > 0`` grown by ``margin`` pixels (within
    the mask), None when the mask is empty. The guided filter's two box blurs of radius r spread
    a face at most 2r + 1 pixels, and past that its coefficients give exactly 0."""
    # one OpenCV comparison and bounding box: numpy's any() along each axis of a float grid cost
    # 2x, three times a frame
    x, y, w, h = cv2.boundingRect(cv2.compare(mask, 0, cv2.CMP_NE))
    if w == 0 or h == 0:
        return None
    height, width = mask.shape
    return max(0, y - margin), min(height, y + h + margin), max(0, x - margin), min(width, x + w + margin)


def _upsampled(low: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """The part ``box`` (full-resolution rows y0:y1, columns x0:x1) of ``low`` bilinearly resized
    to ``size``, exactly what ``cv2.resize`` of the whole would give there, without the rest.

    A plain resize of a piece of ``low`` is 7x faster than a warp that samples the same places,
    so the piece is chosen to line up with the full-resolution pixel grid (see _aligned_span)."""
    (big_h, big_w), (y0, y1, x0, x1) = size, box
    ly0, ly1, fy0, fy1 = _aligned_span(y0, y1, low.shape[0], big_h)
    lx0, lx1, fx0, fx1 = _aligned_span(x0, x1, low.shape[1], big_w)
    piece = cv2.resize(low[ly0:ly1, lx0:lx1], (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_LINEAR)
    return piece[y0 - fy0 : y1 - fy0, x0 - fx0 : x1 - fx0]


def _aligned_span(start: int, stop: int, low: int, big: int) -> tuple[int, int, int, int]:
    """``(l0, l1, f0, f1)``: low-resolution pixels ``l0:l1`` that, resized on their own to the
    full-resolution pixels ``f0:f1`` (which hold ``start:stop``), sample exactly where a resize of
    all ``low`` pixels to ``big`` does. That needs the same scale (``l0`` and ``l1`` on multiples of
    the ratio's denominator, so ``f0 = l0 * big / low`` is whole) and one more low pixel each side
    than the samples read (a piece's resize repeats its own edge, not its neighbour's)."""
    step = low // np.gcd(low, big)
    scale = low / big
    need0 = int(np.floor((start + 0.5) * scale - 0.5)) - 1
    need1 = int(np.ceil((stop - 0.5) * scale - 0.5)) + 2
    l0 = max(0, need0 // step * step)
    l1 = min(low, -(-need1 // step) * step)
    return l0, l1, l0 * big // low, l1 * big // low

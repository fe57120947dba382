"""Face crops: where a face is, the square crop the model sees it in, and the way back.

The model segments a face best when the face fills a good part of its input. A face of 30 px
in a street scene gets the same model pixels as a webcam face by cutting a square around it
(``CROP_MARGIN`` times the face's size), resizing that to the model's input, and warping the
crop's mask back into the frame. Everything here is a pure function of its arguments.

Coordinates are in frame pixels ``(x, y)``, x to the right, y down; a crop is a square given
by its centre and side, and may reach past the frame's edges (the edge pixels are repeated).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecam.realtime.processing import Halvings, shrink

#: side of the square crop as a multiple of the face's size (its skin box's longer side): the
#: model was trained on faces that fill about half of its input, with hair and neck around
CROP_MARGIN = 2.2
#: smallest crop side in frame pixels (a face blob of a few pixels still gets context)
MIN_CROP_SIDE = 24.0
#: a crop keeps only blobs touching its centre disc of this radius (share of the crop side)
SEED_RADIUS = 0.12
#: a proposal's sure cores, and how much bigger than a core its blob must be (see face_blob_boxes)
CORE_THRESHOLD = 0.85
CORE_PARENT_RATIO = 3.0
#: a face box taller than HEAD_ASPECT times its width holds more than a head and its neck: the
#: skin of a bare chest or arm painted with the face (a group photo in party clothes). Its crop
#: is aimed at the top HEAD_HEIGHT times its width, where the head of an upright person is;
#: centred on the whole box it would look at the chest and find no face there
HEAD_ASPECT = 2.0
HEAD_HEIGHT = 1.3
#: a proposal (a blob of the full-frame pass, before any look at it) at least HEAD_WIDE frame
#: pixels wide is aimed at its head from HEAD_ASPECT_WIDE on: a face of 48 px or more (the
#: issue's medium band) painted with its chest or a neighbour below fills a crop of the whole
#: blob so little that its first look found no face at its centre (a woman above her child in a
#: 300 px family photo). Smaller blobs keep HEAD_ASPECT: the head crop lost small faces. Chosen
#: on the photos not held out (1.2-2.0, widths 40-64). A tracked face (its mask with the neck)
#: keeps HEAD_ASPECT: its crop would jump at the threshold, frame to frame.
HEAD_ASPECT_WIDE = 1.4
HEAD_WIDE = 48.0
#: the part of a tall proposal below the face found at its top is looked at when it is at least
#: this share of the proposal's width tall (a face under it; see below_heads)
REST_SHARE = 0.8


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in frame pixels, ``x0 <= x1``, ``y0 <= y1``."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    @property
    def size(self) -> float:
        """The longer side."""
        return max(self.x1 - self.x0, self.y1 - self.y0)

    @property
    def short_side(self) -> float:
        """The shorter side."""
        return min(self.x1 - self.x0, self.y1 - self.y0)

    def shifted(self, dx: float, dy: float) -> Box:
        """The same box moved by ``(dx, dy)`` pixels."""
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def grown(self, factor: float) -> Box:
        """The same centre, each side ``factor`` times as long."""
        cx, cy = self.center
        hw, hh = (self.x1 - self.x0) * factor / 2, (self.y1 - self.y0) * factor / 2
        return Box(cx - hw, cy - hh, cx + hw, cy + hh)


def head_of(face: Box, proposal: bool = False) -> Box:
    """``face``, or its top HEAD_HEIGHT x its width when it is taller than HEAD_ASPECT x its width
    (HEAD_ASPECT_WIDE for a ``proposal`` HEAD_WIDE wide or more)."""
    width = face.x1 - face.x0
    aspect = HEAD_ASPECT_WIDE if proposal and width >= HEAD_WIDE else HEAD_ASPECT
    if face.y1 - face.y0 <= aspect * width:
        return face
    return Box(face.x0, face.y0, face.x1, face.y0 + HEAD_HEIGHT * width)


def below_heads(proposals: list[Box], faces: list[Box]) -> list[Box]:
    """What each tall proposal holds below the face found at its head: a second face, perhaps.

    A tall blob is aimed at its head (see head_of): a face above a bare chest. But in a group
    photo it is as often two faces one above the other (a person standing behind another), and
    once the head's crop has found the upper face, the lower one counts as followed by it. The
    part of the proposal under that face (``faces``: the faces found now), when it is at least
    REST_SHARE of the proposal's width tall, is proposed on its own; the verifier drops a chest."""
    rests = []
    for box in proposals:
        head = head_of(box, proposal=True)
        if head == box:
            continue
        width = box.x1 - box.x0
        for face in faces:
            if inside(face.center, head) and box.y1 - face.y1 >= REST_SHARE * width:
                rests.append(Box(box.x0, face.y1, box.x1, box.y1))
                break
    return rests


def inside(point: tuple[float, float], box: Box) -> bool:
    """Whether ``point`` ``(x, y)`` lies in ``box`` (its edges included)."""
    x, y = point
    return box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter
    return inter / union if union > 0 else 0.0


def iou_matrix(first: list[Box], second: list[Box]) -> np.ndarray:
    """``(len(first), len(second)) float64``: :func:`iou` of every pair, the same arithmetic in
    the same order (so the same values to the last bit), in a few array operations instead of a
    Python call a pair: a crowd's tracker compares ~70 held faces with ~15 tracks a frame."""
    return iou_of_corners(corners(first).reshape(-1, 1, 4), corners(second).reshape(1, -1, 4))


def ious_with(box: Box, others: np.ndarray) -> np.ndarray:
    """``(N,) float64``: :func:`iou` of ``box`` with each of ``others`` (``(N, 4)`` corners, see
    :func:`corners`), to the last bit: one box against a crowd's held faces or tracks."""
    return iou_of_corners(np.array([box.x0, box.y0, box.x1, box.y1], np.float64), others)


def corners(boxes: list[Box]) -> np.ndarray:
    """``(N, 4) float64``: each box's ``x0, y0, x1, y1``."""
    return np.array([(b.x0, b.y0, b.x1, b.y1) for b in boxes], np.float64).reshape(-1, 4)


def iou_of_corners(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`iou` of corner arrays ``a`` and ``b`` (``(..., 4)``, broadcast), in its arithmetic and order."""
    w = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    h = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = w * h
    union = (
        (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    )
    touching = (w > 0) & (h > 0) & (union > 0)
    return np.divide(inter, union, out=np.zeros_like(inter), where=touching)


@dataclass(frozen=True)
class Crop:
    """A square region of the frame: centre ``(cx, cy)`` and ``side`` in frame pixels."""

    cx: float
    cy: float
    side: float

    @classmethod
    def around(cls, face: Box, margin: float = CROP_MARGIN, proposal: bool = False) -> Crop:
        face = head_of(face, proposal)
        cx, cy = face.center
        return cls(cx, cy, max(MIN_CROP_SIDE, margin * face.size))

    def to_crop(self, size: int) -> np.ndarray:
        """``(2, 3) float64`` affine matrix: frame pixels -> pixels of a ``size x size`` crop."""
        s = size / self.side
        return np.array([[s, 0.0, size / 2 - self.cx * s], [0.0, s, size / 2 - self.cy * s]])

    def box(self) -> Box:
        half = self.side / 2
        return Box(self.cx - half, self.cy - half, self.cx + half, self.cy + half)


def touches_side_or_top(box: Box, frame_hw: tuple[int, int], within: float = 2.0) -> bool:
    """Whether ``box`` reaches within ``within`` px of the frame's left, right or top edge."""
    width = frame_hw[1]
    return box.x0 <= within or box.y0 <= within or box.x1 >= width - within


def fit_crop(crop: Crop, frame_hw: tuple[int, int]) -> Crop:
    """``crop`` no larger than the frame's long side, moved inside the frame along each axis the
    frame covers. A face that fills the frame is then seen as the whole frame (as the model was
    trained), not shrunk into a crop of mostly repeated edge pixels."""
    height, width = frame_hw
    side = min(crop.side, float(max(height, width)))

    def clamp(centre: float, extent: int) -> float:
        return extent / 2 if extent <= side else min(max(centre, side / 2), extent - side / 2)

    return Crop(clamp(crop.cx, width), clamp(crop.cy, height), side)


def crop_pixels(frame: np.ndarray, crop: Crop, size: int, levels: Halvings | None = None) -> np.ndarray:
    """``(H, W, 3) uint8`` frame -> ``(size, size, 3) uint8`` crop (edge pixels repeated past the frame).

    A crop much larger than ``size`` (a big face) is taken from a frame shrunk by area
    averaging first: a bilinear warp alone would alias like a nearest-neighbour resize.
    ``levels``: the frame's :class:`Halvings`, when the caller has them (then the shrunk frame is
    one already made for the other steps; without them only the crop's region is shrunk).
    """
    factor = 1
    while crop.side / (2 * factor) >= size:
        factor *= 2
    if factor >= 2 and levels is not None and min(frame.shape[:2]) >= factor:
        level = levels.level(factor.bit_length() - 1)
        # a level's pixel j averages the frame's pixels j*f .. j*f+f-1 (f its exact scale per axis)
        fx, fy = frame.shape[1] / level.shape[1], frame.shape[0] / level.shape[0]
        crop = Crop((crop.cx + 0.5) / fx - 0.5, (crop.cy + 0.5) / fy - 0.5, crop.side / fx)
        frame = level
    elif factor >= 2:
        # only the crop's part of the frame is shrunk (by exact halvings: 2x2 averages), with a
        # margin for the warp's interpolation; past the frame's edge the warp repeats the edge
        height, width = frame.shape[:2]
        half = crop.side / 2 + 2 * factor
        x0, x1 = max(0, int(crop.cx - half)), min(width, int(np.ceil(crop.cx + half)))
        y0, y1 = max(0, int(crop.cy - half)), min(height, int(np.ceil(crop.cy + half)))
        x1, y1 = x0 + max(factor, (x1 - x0) // factor * factor), y0 + max(factor, (y1 - y0) // factor * factor)
        region = frame[y0:y1, x0:x1]
        if region.shape[0] >= factor and region.shape[1] >= factor:
            frame = shrink(region, (region.shape[1] // factor, region.shape[0] // factor))
            # a shrunk pixel j averages frame pixels j*f .. j*f+f-1, whose centre is (f-1)/2 past j*f
            crop = Crop((crop.cx - x0 + 0.5) / factor - 0.5, (crop.cy - y0 + 0.5) / factor - 0.5, crop.side / factor)
    return cv2.warpAffine(frame, crop.to_crop(size), (size, size), borderMode=cv2.BORDER_REPLICATE)


def boxes_of_blobs(probability: np.ndarray, scale: tuple[float, float], threshold: float, min_pixels: int) -> list[Box]:
    """Boxes, in frame pixels, of the blobs of ``probability`` above ``threshold``.

    ``probability``: ``(h, w) float32`` on a grid ``scale = (sx, sy)`` frame pixels per grid
    pixel. Blobs under ``min_pixels`` grid pixels are noise and are left out.
    """
    count, _, stats, _ = cv2.connectedComponentsWithStats((probability > threshold).astype(np.uint8))
    sx, sy = scale
    boxes = []
    for x, y, w, h, area in stats[1:count]:
        if area >= min_pixels:
            boxes.append(Box(x * sx, y * sy, (x + w) * sx, (y + h) * sy))
    return boxes


def face_blob_boxes(
    probability: np.ndarray, scale: tuple[float, float], threshold: float, min_pixels: int, cores: bool = False
) -> list[Box]:
    """A full-frame pass's proposals: :func:`boxes_of_blobs` at ``threshold``; with ``cores``,
    also the blobs at CORE_THRESHOLD inside a blob at least CORE_PARENT_RATIO times their size.

    Why: at ``threshold`` a face can run into a large doubtful region (the bright lamps above a
    man's head) and its blob is then too big to be taken for a face; at a higher threshold the
    face's sure core stands apart. Only where a missed face costs more than a wrong one
    (anonymize): a sure core also comes out of a lamp or a hand in such a region
    (`lfw-parts/test` IoU 0.9071 -> 0.9054 with cores, 0.9039 with the cores of every blob).
    """
    boxes = boxes_of_blobs(probability, scale, threshold, min_pixels)
    if not cores:
        return boxes
    sure = boxes_of_blobs(probability, scale, max(threshold, CORE_THRESHOLD), min_pixels)
    return boxes + [c for c in sure if any(_inside(c, b) and b.size >= CORE_PARENT_RATIO * c.size for b in boxes)]


def _inside(inner: Box, outer: Box) -> bool:
    return outer.x0 <= inner.x0 and outer.y0 <= inner.y0 and inner.x1 <= outer.x1 and inner.y1 <= outer.y1


def faces_in_crop(probability: np.ndarray, crop: Crop, threshold: float, min_pixels: int) -> list[Box]:
    """Boxes, in frame pixels, of the blobs of a crop's ``(s, s)`` ``probability`` above
    ``threshold`` and at least ``min_pixels`` crop pixels."""
    size = probability.shape[0]
    boxes = boxes_of_blobs(probability, (1.0, 1.0), threshold, min_pixels)
    return [crop_box_to_frame((b.x0, b.y0, b.x1, b.y1), crop, size) for b in boxes]


def keep_blobs_touching(probability: np.ndarray, seed: np.ndarray, threshold: float) -> np.ndarray:
    """``probability`` ``(s, s) float32`` with every blob (above ``threshold``) that does not
    touch ``seed`` (``(s, s) bool``) set to 0, so a crop adds only the face it was cut for,
    not a neighbour's face or a hand in its corner. The soft rim of a kept blob stays."""
    binary = cv2.compare(probability, threshold, cv2.CMP_GT)
    count, labels = cv2.connectedComponents(binary)
    touched = np.unique(labels[seed]) if count > 1 else np.zeros(0, np.int32)
    touched = touched[touched > 0]
    if touched.size == 0:
        return np.zeros_like(probability)
    if count == 2:  # one blob, the face itself most frames: it is the binary image (no relabelling)
        kept = binary
    else:
        keep = np.zeros(count, np.uint8)
        keep[touched] = 1
        kept = keep[labels]
    # the rim below the threshold belongs to the blob it surrounds: grow the kept blobs by 2 px
    kept = cv2.dilate(kept, np.ones((5, 5), np.uint8))
    out = np.zeros_like(probability)
    cv2.copyTo(probability, kept, out)
    return out


def blob_box(probability: np.ndarray, threshold: float) -> tuple[float, float, float, float] | None:
    """``(x0, y0, x1, y1)`` of the pixels above ``threshold`` in ``probability``'s grid; None if none."""
    x, y, w, h = cv2.boundingRect(cv2.compare(probability, threshold, cv2.CMP_GT))
    if w == 0 or h == 0:
        return None
    return float(x), float(y), float(x + w), float(y + h)


def crop_box_to_frame(box: tuple[float, float, float, float], crop: Crop, size: int) -> Box:
    """A box in the pixels of a ``size`` crop, back in frame pixels."""
    s = crop.side / size
    x0, y0, x1, y1 = box
    left, top = crop.cx - crop.side / 2, crop.cy - crop.side / 2
    return Box(left + x0 * s, top + y0 * s, left + x1 * s, top + y1 * s)


def paste_max(grid: np.ndarray, crop_probability: np.ndarray, crop: Crop, grid_scale: float) -> None:
    """Warp a crop's ``(s, s) float32`` mask into ``grid`` (``(h, w) float32``, ``grid_scale``
    grid pixels per frame pixel) and keep the larger value there, in place. Only the crop's
    footprint on the grid is touched, so the cost grows with the face, not the frame."""
    size = crop_probability.shape[0]
    h, w = grid.shape
    footprint = crop.box()
    x0, y0 = max(0, int(footprint.x0 * grid_scale)), max(0, int(footprint.y0 * grid_scale))
    x1, y1 = min(w, int(np.ceil(footprint.x1 * grid_scale))), min(h, int(np.ceil(footprint.y1 * grid_scale)))
    if x1 <= x0 or y1 <= y0:
        return
    # grid ROI pixel -> crop pixel: grid (u, v) is frame ((u + x0) / g, (v + y0) / g)
    to_crop = crop.to_crop(size)
    g = grid_scale
    matrix = to_crop @ np.array([[1 / g, 0, x0 / g], [0, 1 / g, y0 / g], [0, 0, 1]])
    warped = cv2.warpAffine(
        crop_probability,
        matrix,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    np.maximum(grid[y0:y1, x0:x1], warped, out=grid[y0:y1, x0:x1])


def seed_disc(size: int, centre: tuple[float, float], radius_share: float = SEED_RADIUS) -> np.ndarray:
    """``(size, size) bool``: the disc around ``centre`` (crop pixels) where the face the crop
    was cut for lies (its centre in the last frame; a crop pushed inside the frame is not
    centred on its face). Only the disc's bounding square is computed (a dozen faces a frame)."""
    r = radius_share * size
    disc = np.zeros((size, size), bool)
    x0, x1 = max(0, int(centre[0] - r - 1)), min(size, int(np.ceil(centre[0] + r + 1)))
    y0, y1 = max(0, int(centre[1] - r - 1)), min(size, int(np.ceil(centre[1] + r + 1)))
    if x1 <= x0 or y1 <= y0:
        return disc
    yy, xx = np.ogrid[y0:y1, x0:x1]
    disc[y0:y1, x0:x1] = (xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2 <= r * r
    return disc


def zeroed_outside_frame(probability: np.ndarray, crop: Crop, frame_hw: tuple[int, int]) -> np.ndarray:
    """A copy of a crop's ``(s, s)`` ``probability`` with the pixels that lie past the frame's
    edges set to 0 (the crop repeats the frame's edge pixels there). What lies inside the frame
    is a block of rows by a block of columns: four strips are zeroed, no frame-of-ones multiplied."""
    size = probability.shape[0]
    height, width = frame_hw
    left, top, step = crop.cx - crop.side / 2, crop.cy - crop.side / 2, crop.side / size
    rows = _block_within(top + (np.arange(size) + 0.5) * step, height)
    cols = _block_within(left + (np.arange(size) + 0.5) * step, width)
    out = probability.copy()
    out[: rows.start] = 0
    out[rows.stop :] = 0
    out[:, : cols.start] = 0
    out[:, cols.stop :] = 0
    return out


def _block_within(centres: np.ndarray, extent: int) -> slice:
    """The block of increasing pixel ``centres`` within ``0 .. extent`` (an empty slice if none)."""
    inside = np.flatnonzero((centres >= 0) & (centres < extent))
    return slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0)


def crop_to_crop(old: Crop, new: Crop, size: int) -> np.ndarray:
    """``(2, 3)`` affine: pixels of ``old``'s crop -> pixels of ``new``'s crop (both ``size``)."""
    to_new = np.vstack([new.to_crop(size), [0, 0, 1]])
    from_old = np.linalg.inv(np.vstack([old.to_crop(size), [0, 0, 1]]))
    return (to_new @ from_old)[:2]

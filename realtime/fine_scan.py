"""The zoomed full-frame pass for small faces, in a stream: one tile a frame, changed tiles only.

Why: the zoomed pass sees a 720p frame at full size (1280x736 model pixels): 230 ms of CPU in
one go. Run every few seconds in one frame, it made that frame and the few behind it late (at a 30 fps
camera, 720p: latency p95 76 ms with it, 34 ms without). In a stream it is cut into tiles,
looked at one a frame, so no frame waits much longer than the others. And a tile whose picture
has not changed since the model last looked at it is skipped: the model would see what it saw
then, so no new face can be there (a webcam's background, the empty half of a room).

A scene cut, the first frame and photos still get the whole pass at once (faces are needed
now), and so does a stream whose period is too short to spread the tiles over (anonymize at
720p looks every 12 frames: one pass costs less than the tiles' overlaps).

The same test of an unchanged picture lets a stream pass over the full-frame pass at the
model's size (FullPassMemory).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facecam.face import FACE_THRESHOLD
from facecam.realtime.crops import Box, face_blob_boxes
from facecam.realtime.processing import black_input, preprocess, shrink

#: tile side in model pixels (a multiple of 32), and how far neighbouring tiles overlap: a face
#: up to TILE_OVERLAP model pixels is whole in some tile (bigger ones are the coarse pass's)
TILE_SIDE = 320
TILE_OVERLAP = 64
#: a tile is unchanged when no pixel of its part of the 64x64 scene thumbnail moved more than
#: this many grey levels (compression noise moves a few; a 16 px face coming in moves tens)
UNCHANGED_LEVELS = 10
#: every this many passes, even unchanged tiles are looked at again (see FineScan), and the
#: full-frame pass runs at least once in this many of its periods (see FullPassMemory)
REFRESH_PERIODS = 3
#: a tracked face's box grown this much holds the changes its own motion makes (hair, neck)
FACE_MOTION_GROWTH = 1.5
#: a stream's zoomed pass sees the frame's edges inside a black border this wide (model
#: pixels): the model misses a face cut by its input's edge, as a face coming into view is. At
#: the right edge of a 640x360 clip a 34 px face scored 0.34 at most, and 1.0 with the border
#: (a frame around a shrunk photo is what its training showed: the webcam framing). Photos go
#: without: there it moved faces both ways (a taller blob of a face at the edge, hair included,
#: that the verifier then turned down), 2 more of 807 found in all.
EDGE_BORDER = 32

Tile = tuple[int, int, int, int]  # (y0, y1, x0, x1) in the zoomed pass's pixels


def tile_starts(extent: int, side: int = TILE_SIDE, overlap: int = TILE_OVERLAP) -> list[int]:
    """Where tiles of ``side`` start along an axis of ``extent`` pixels so that they cover it
    and each overlaps the next by at least ``overlap`` (evenly spread, on multiples of 32)."""
    if extent <= side:
        return [0]
    count = math.ceil((extent - overlap) / (side - overlap))
    return sorted({int(round(i * (extent - side) / (count - 1) / 32)) * 32 for i in range(count)} | {extent - side})


def tile_grid(zoomed_hw: tuple[int, int], side: int = TILE_SIDE, overlap: int = TILE_OVERLAP) -> list[Tile]:
    """The tiles covering a zoomed pass of ``(h, w)`` pixels, row by row."""
    height, width = zoomed_hw
    rows = [(y, min(height, y + side)) for y in tile_starts(height, side, overlap)]
    cols = [(x, min(width, x + side)) for x in tile_starts(width, side, overlap)]
    return [(y0, y1, x0, x1) for y0, y1 in rows for x0, x1 in cols]


def tile_region(tile: Tile, zoomed_hw: tuple[int, int], frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)``: the frame pixels a tile of the zoomed pass shows."""
    (zh, zw), (height, width) = zoomed_hw, frame_hw
    y0, y1, x0, x1 = tile
    return (
        int(y0 * height / zh),
        min(height, math.ceil(y1 * height / zh)),
        int(x0 * width / zw),
        min(width, math.ceil(x1 * width / zw)),
    )


def tile_pixels(frame: np.ndarray, region: tuple[int, int, int, int], size_hw: tuple[int, int]) -> np.ndarray:
    """The frame's ``region`` at the tile's ``size_hw``: area-averaged when smaller, bilinear when larger."""
    y0, y1, x0, x1 = region
    part, (h, w) = frame[y0:y1, x0:x1], size_hw
    if part.shape[0] >= h and part.shape[1] >= w:
        return shrink(part, (w, h))
    return cv2.resize(part, (w, h), interpolation=cv2.INTER_LINEAR)


def thumb_patch(thumb: np.ndarray, tile: Tile, zoomed_hw: tuple[int, int]) -> np.ndarray:
    """The part of a scene thumbnail (any size) a tile covers."""
    y0, y1, x0, x1 = tile_region(tile, zoomed_hw, thumb.shape[:2])
    return thumb[y0:y1, x0:x1]


class FineScan:
    """Which tiles of the zoomed pass are still to be looked at, and what each looked like when
    it last was. ``looked_all`` after a whole pass; ``start`` when the next pass is due;
    ``next_tile`` once a frame.

    ``skip_unchanged``: pass over tiles that have not changed (off in anonymize, where a face
    missed once, or too faint to change the thumbnail, must be looked for again every period).
    Even then every REFRESH_PERIODS-th pass looks at every tile: the model or the verifier may
    have missed a face that then stood still, or one next to a tracked face (whose changes do
    not count).
    """

    def __init__(self, skip_unchanged: bool = True) -> None:
        self.skip_unchanged = skip_unchanged
        self.zoomed_hw: tuple[int, int] | None = None
        self.tiles: list[Tile] = []
        self._looked: dict[Tile, np.ndarray] = {}
        self._pending: list[Tile] = []
        self._passes = 0
        self._look_at_all = False

    def looked_all(self, zoomed_hw: tuple[int, int], thumb: np.ndarray) -> None:
        """The whole zoomed pass ran on the frame of ``thumb``: every tile was looked at."""
        self.zoomed_hw, self.tiles = zoomed_hw, tile_grid(zoomed_hw)
        self._looked = {tile: thumb_patch(thumb, tile, zoomed_hw) for tile in self.tiles}
        self._pending = []

    def start(self) -> None:
        """The next pass is due: every tile is to be looked at again (unless unchanged)."""
        self._pending = list(self.tiles)
        self._passes += 1
        self._look_at_all = not self.skip_unchanged or self._passes % REFRESH_PERIODS == 0

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def next_tile(self, thumb: np.ndarray, faces: list[Box] = (), frame_hw: tuple[int, int] = (1, 1)) -> Tile | None:
        """The next tile to look at in the frame of ``thumb``: tiles that have not changed since
        they were last looked at are passed over. Changes on the tracked ``faces`` (frame-pixel
        boxes in a frame of ``frame_hw``, grown by FACE_MOTION_GROWTH: a head turning, its hair
        and shoulders moving) do not count: a face moving brings no new face. None when the pass
        is done."""
        moved = moving_faces_mask(thumb.shape[:2], faces, frame_hw)
        while self._pending:
            tile = self._pending.pop(0)
            patch = thumb_patch(thumb, tile, self.zoomed_hw)
            before = self._looked.get(tile)
            if not self._look_at_all and unchanged(before, patch, thumb_patch(moved, tile, self.zoomed_hw)):
                continue
            self._looked[tile] = patch
            return tile
        return None


class FullPassMemory:
    """What a stream's last full-frame pass saw, so that the next one may be passed over while
    nothing outside the tracked faces has changed since (a webcam's background): a new face
    changes the picture where no face is tracked. Not when the pass left a face it proposed
    unfollowed (the verifier may take it the next time), when a face it left tracked is lost
    since (it may be found again), nor more than REFRESH_PERIODS - 1 times in a row (a face the
    model missed in a still picture)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._thumb: np.ndarray | None = None
        self._tracks: list = []
        self._passed = 0
        self._settled = False

    def ran(self, thumb: np.ndarray, tracks: list, settled: bool) -> None:
        """The pass ran on the frame of ``thumb``; ``tracks`` after it; ``settled``: every face it
        proposed is followed."""
        self._thumb, self._tracks, self._passed, self._settled = thumb, list(tracks), 0, settled

    def may_pass_over(self, thumb: np.ndarray, tracks: list, frame_hw: tuple[int, int]) -> bool:
        """Whether the pass due on the frame of ``thumb`` may be passed over (``tracks``: now)."""
        if not self._settled or self._passed >= REFRESH_PERIODS - 1:
            return False
        if not all(any(t is u for u in tracks) for t in self._tracks):
            return False
        return unchanged(self._thumb, thumb, moving_faces_mask(thumb.shape, [t.face for t in tracks], frame_hw))

    def passed_over(self) -> None:
        self._passed += 1


def unchanged(before: np.ndarray | None, now: np.ndarray, moving: np.ndarray) -> bool:
    """Whether no pixel of a thumbnail (or a part of one) moved more than UNCHANGED_LEVELS since
    ``before`` (None: never seen), leaving out the ``moving`` pixels (``bool``, the tracked faces)."""
    if before is None or before.shape != now.shape:
        return False
    change = cv2.absdiff(before, now)
    change[moving] = 0
    return int(change.max()) <= UNCHANGED_LEVELS


def moving_faces_mask(thumb_hw: tuple[int, int], faces: list[Box], frame_hw: tuple[int, int]) -> np.ndarray:
    """``thumb_hw`` bool: True on the thumbnail pixels the ``faces`` (grown by FACE_MOTION_GROWTH) cover."""
    (th, tw), (height, width) = thumb_hw, frame_hw
    mask = np.zeros((th, tw), bool)
    for face in faces:
        box = face.grown(FACE_MOTION_GROWTH)
        y0, y1 = max(0, int(box.y0 * th / height)), min(th, math.ceil(box.y1 * th / height))
        x0, x1 = max(0, int(box.x0 * tw / width)), min(tw, math.ceil(box.x1 * tw / width))
        mask[y0:y1, x0:x1] = True
    return mask


def blobs_in_tile(
    segmenter, frame: np.ndarray, tile: Tile, zoomed_hw: tuple[int, int], min_pixels: int, cores: bool = False
) -> list[Box]:
    """Boxes, in frame pixels, of the face blobs the model sees in one tile of the zoomed pass
    (blobs under ``min_pixels`` model pixels are noise; ``cores``: see crops.face_blob_boxes)."""
    region = tile_region(tile, zoomed_hw, frame.shape[:2])
    size = (tile[1] - tile[0], tile[3] - tile[2])
    # the border on the frame's edges only (within the frame the tiles overlap), or all round
    # where each new input shape costs a session (CUDA; TensorRT, unmeasured here, keeps one)
    y0, y1, x0, x1 = tile
    edges = (y0 == 0, y1 == zoomed_hw[0], x0 == 0, x1 == zoomed_hw[1])
    if getattr(segmenter, "few_shapes", False):
        edges = (True, True, True, True)
    tensor = preprocess(tile_pixels(frame, region, size), size, segmenter.card)
    probability = probability_in_border(segmenter, tensor, edges)
    return tile_boxes_to_frame(
        face_blob_boxes(probability, (1.0, 1.0), FACE_THRESHOLD, min_pixels, cores), region, size
    )


def tile_boxes_to_frame(boxes: list[Box], region: tuple[int, int, int, int], size_hw: tuple[int, int]) -> list[Box]:
    """Boxes in a tile's model pixels -> frame pixels."""
    y0, y1, x0, x1 = region
    sy, sx = (y1 - y0) / size_hw[0], (x1 - x0) / size_hw[1]
    return [Box(x0 + b.x0 * sx, y0 + b.y0 * sy, x0 + b.x1 * sx, y0 + b.y1 * sy) for b in boxes]


def probability_in_border(segmenter, tensor: np.ndarray, edges: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """The segmenter's ``(h, w)`` face probability for a ``(1, 3, h, w)`` input, seen inside a
    black border of EDGE_BORDER model pixels on each of its ``edges`` (top, bottom, left, right)."""
    if not any(edges):  # the coarse pass, a photo's passes, a tile inside the frame: no copy
        return segmenter.infer(tensor)
    top, bottom, left, right = (EDGE_BORDER if edge else 0 for edge in edges)
    _, channels, height, width = tensor.shape
    framed = np.empty((1, channels, height + top + bottom, width + left + right), np.float32)
    framed[:] = black_input(segmenter.card)[None, :, None, None]
    framed[:, :, top : top + height, left : left + width] = tensor
    return segmenter.infer(framed)[top : top + height, left : left + width]

"""Faces coming into view at the frame's edge, looked for as they come (anonymize).

    watch = EdgeWatch()                                            # one per stream
    for tile in watch.due(thumb, frame_hw, zoomed_hw, model_side):   # once a frame: the strips due now
        boxes = full_pass.tile_proposals(segmenter, frame, tile, watch.view_hw)

Why: when the camera pans across a crowd, faces come in at the edge. The full-frame pass at the
model's size does not paint a 75 px face of a 640 px frame (26 px to the model), and the zoomed
pass that does comes every 12 frames in anonymize: measured on the panning group clips, a face
of 75-90 px stayed in clear view for up to 18 frames (group5.mp4) and 6 (group1.mp4), while
`deface`, which looks at every frame, covers it.

So the picture's shift from the last frame (phase correlation of the scene thumbnails) says
which edge brings new picture and how much of it. Once STEP_SHARE of the frame's side has come
in at an edge (net: picture that came in and went out again does not count), the strip along
that edge (DEPTH_SHARE deep: a face that came in whole) is looked at at 3/4 of the zoomed
pass's scale: 1.5 times the frame's size at 640x360 (a 75 px face gets 112 model pixels), at
least the model's own size. Small faces coming in (under ~20 px) stay the zoomed pass's. The
cost follows the pan:
a still camera's jitter and noise come and go and add up to next to nothing.

Not covered: a zoom out (the picture shrinks towards the centre: new picture at every edge, no
shift); the zoomed pass still finds those faces.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facecam.realtime import processing
from facecam.realtime.fine_scan import Tile
from facecam.realtime.reuse import hanning_window

#: share of the frame's side (along the shift) that must have come in at an edge before its
#: strip is looked at: at 640 px, every 20 px of pan (2-3 frames of the group clips' pans)
STEP_SHARE = 1 / 32
#: the strip's depth, a share of the frame's side: holds a face of up to 128 px at 640
DEPTH_SHARE = 1 / 5
#: the strips are seen at this share of the zoomed pass's scale (see the module's docstring). At
#: 0.5 (the frame's own size at 640x360) a face cut in half by the edge it comes in at was not
#: painted while a whole one was: in group1.mp4 a 70 px face stayed in clear view for 5 frames as
#: it came in (frames 199-203), painted at 0.75 and 1.0. Chosen on group-1 and group-5 (0.5 /
#: 0.75 / 1.0: faces in clear view 3+ frames 4 / 1 / 1 and 2 / 2 / 1, longest 5 / 4 / 4 and
#: 13 / 10 / 16 frames), for about 1 ms of CPU a frame more in a pan (25 strips in group1)
SCALE_OF_ZOOMED = 0.75
#: a shift whose phase-correlation peak is weaker than this is noise (a flat or changing picture)
MIN_RESPONSE = 0.05

TOP, BOTTOM, LEFT, RIGHT = range(4)


def scene_shift(before: np.ndarray, now: np.ndarray, frame_hw: tuple[int, int]) -> tuple[float, float]:
    """``(dx, dy)`` frame pixels the picture moved by from the thumbnail ``before`` to ``now``
    (``(h, w) uint8``, the whole frame of ``frame_hw`` shrunk); (0, 0) when no shift stands out."""
    (th, tw), (height, width) = before.shape, frame_hw
    window = hanning_window(th, tw)
    (dx, dy), response = cv2.phaseCorrelate(before.astype(np.float32), now.astype(np.float32), window)
    if response < MIN_RESPONSE:
        return 0.0, 0.0
    return dx * width / tw, dy * height / th


def incoming(shift: tuple[float, float]) -> tuple[float, float, float, float]:
    """Frame pixels of picture a ``(dx, dy)`` shift brings in at the top, bottom, left and right
    edges (negative: takes out): a picture moving left (dx < 0) comes in at the right edge."""
    dx, dy = shift
    return dy, -dy, dx, -dx


def edge_steps(frame_hw: tuple[int, int]) -> list[float]:
    """STEP_SHARE of the frame's side along each edge (top, bottom, left, right), in frame px:
    the new picture an edge must bring in before its strip is looked at."""
    height, width = frame_hw
    return [STEP_SHARE * side for side in (height, height, width, width)]


def strip_tile(edge: int, view_hw: tuple[int, int]) -> Tile:
    """The strip along ``edge`` as a tile ``(y0, y1, x0, x1)`` of a view of ``view_hw`` pixels,
    DEPTH_SHARE of its side deep (rounded up to a multiple of 32)."""
    height, width = view_hw
    step = processing.SIZE_MULTIPLE

    def depth(side: int) -> int:
        return min(side, math.ceil(side * DEPTH_SHARE / step) * step)

    if edge == TOP:
        return 0, depth(height), 0, width
    if edge == BOTTOM:
        return height - depth(height), height, 0, width
    if edge == LEFT:
        return 0, height, 0, depth(width)
    return 0, height, width - depth(width), width


class EdgeWatch:
    """How much new picture each edge has brought in since its strip was last looked at."""

    def __init__(self) -> None:
        self.view_hw: tuple[int, int] | None = None
        self.reset()

    def reset(self) -> None:
        """A new stream or a scene cut: nothing has come in yet."""
        self._thumb: np.ndarray | None = None
        self._new = [0.0] * 4
        self.shift = (0.0, 0.0)  # the picture's shift into the last frame, frame pixels

    def looked_all(self) -> None:
        """The whole zoomed pass just looked at the whole frame: no edge has anything new."""
        self._new = [0.0] * 4

    def observe(self, thumb: np.ndarray, frame_hw: tuple[int, int]) -> tuple[float, float]:
        """Measure the picture's shift into the frame of ``thumb`` (its scene thumbnail) and the
        picture each edge brought in; returns the shift (also :attr:`shift`). Once a frame,
        before :meth:`due` (which observes a thumbnail it was not given yet itself)."""
        steps = edge_steps(frame_hw)
        self.shift = (0.0, 0.0)
        if self._thumb is not None and self._thumb.shape == thumb.shape:
            # net of what went out again: a still camera's jitter comes and goes and sums to about
            # nothing (a floor of one step, not zero: a sum held at zero would creep up by the
            # jitter's every move in); a pan back over picture it just showed brings nothing new
            self.shift = scene_shift(self._thumb, thumb, frame_hw)
            for edge, pixels in enumerate(incoming(self.shift)):
                self._new[edge] = max(-steps[edge], self._new[edge] + pixels)
        self._thumb = thumb
        return self.shift

    def due(
        self, thumb: np.ndarray, frame_hw: tuple[int, int], zoomed_hw: tuple[int, int], model_side: int
    ) -> list[Tile]:
        """The strips to look at in the frame of ``thumb`` (its scene thumbnail), as tiles of
        :attr:`view_hw` (set here: the frame at SCALE_OF_ZOOMED of ``zoomed_hw``, the zoomed
        pass's size, and at least ``model_side`` long); call once a frame."""
        if thumb is not self._thumb:
            self.observe(thumb, frame_hw)
        steps = edge_steps(frame_hw)
        long_side = max(model_side, SCALE_OF_ZOOMED * max(zoomed_hw))
        self.view_hw = processing.scaled_size(frame_hw, long_side)
        due = [edge for edge in range(4) if self._new[edge] >= steps[edge]]
        for edge in due:
            self._new[edge] = 0.0
        return [strip_tile(edge, self.view_hw) for edge in due]

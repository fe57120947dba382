"""Every face in the frame: find faces at every scale, segment each in its own crop, track them.

    finder = FaceFinder(segmenter)              # one per stream (camera, video, photo)
    result = finder.process(frame, index)       # (H, W, 3) uint8 BGR, frame number
    result.mask                                 # (h, w) float32 0..1 on the mask grid
    result.faces, result.held                   # boxes of the tracked and the just-lost faces

Why: at the model's own size (224 px on the frame's long side) a face of 40 px in a group
photo becomes 7 px and is missed, while the same model segments it well once it fills a
crop. So a full-frame pass at a larger size proposes faces (run every ``find_every`` frames
and on a scene cut), each face is segmented in a square crop around it at the model's input
size, and the crops' masks are merged into one frame mask. Between full-frame passes each
face's crop follows it from the previous frame, so the cost grows with the number of faces,
not the frame size. Each face is smoothed over time in its own crop, which moves with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from facecam.realtime import processing
from facecam.realtime.crops import (
    Box,
    Crop,
    blob_box,
    boxes_of_blobs,
    crop_box_to_frame,
    crop_pixels,
    keep_blobs_touching,
    paste_max,
)
from facecam.realtime.tracking import FaceTracker, HeldFace, Track

#: the full-frame pass sees the frame this many times larger than its own pixels (small faces
#: get model pixels), with the long side at most FINDER_MAX_SIDE (cost) and at least the model's
FINDER_ZOOM = 2.0
FINDER_MAX_SIDE = 1280
#: full-frame pass every this many frames (and at the start, on a scene cut, while no face is tracked)
FIND_EVERY = 6
#: the merged mask's grid: the frame with its long side at most this (finer than the model's
#: own 224, so a small face keeps a shape); the edge-aware upsampling takes it to full size
GRID_SIDE = 384
#: probability above which a pixel is face (the runtime's one definition)
FACE_THRESHOLD = 0.5
#: finder blobs smaller than this (finder pixels) are noise
MIN_BLOB_PIXELS = 12
#: a crop keeps only blobs touching its centre disc of this radius (share of the crop side)
SEED_RADIUS = 0.12
#: a mean grey change (0..255) this large between frames is a scene cut: every face is dropped
SCENE_CUT = 40.0
#: how long a lost face stays anonymised, in seconds (converted with the stream's frame rate)
MEMORY_SECONDS = 0.5


@dataclass
class FrameFaces:
    """What :meth:`FaceFinder.process` found in one frame."""

    mask: np.ndarray  # (h, w) float32 0..1 on the mask grid
    faces: list[Box] = field(default_factory=list)  # faces tracked in this frame (frame pixels)
    held: list[HeldFace] = field(default_factory=list)  # faces lost within the memory
    found_new: int = 0  # faces the full-frame pass added in this frame


def grid_shape(frame_hw: tuple[int, int], grid_side: int = GRID_SIDE) -> tuple[tuple[int, int], float]:
    """``((h, w), scale)`` of the mask grid for a frame of ``(H, W)``: scale = grid px per frame px."""
    height, width = frame_hw
    scale = min(1.0, grid_side / max(height, width))
    return (max(1, round(height * scale)), max(1, round(width * scale))), scale


def finder_size(frame_hw: tuple[int, int], model_side: int, zoom: float = FINDER_ZOOM) -> tuple[int, int]:
    """``(h, w)`` of the full-frame pass: the frame ``zoom`` times larger, its long side within
    ``model_side .. FINDER_MAX_SIDE``, each side a multiple of 32 (the models downsample by 32)."""
    height, width = frame_hw
    long_side = min(FINDER_MAX_SIDE, max(model_side, zoom * max(height, width)))
    scale = long_side / max(height, width)

    def snap(v: float) -> int:
        return max(processing.SIZE_MULTIPLE, int(v * scale / processing.SIZE_MULTIPLE + 0.5) * processing.SIZE_MULTIPLE)

    return snap(height), snap(width)


def seed_disc(size: int, radius_share: float = SEED_RADIUS) -> np.ndarray:
    """``(size, size) bool``: the disc at a crop's centre where the face it was cut for lies."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = radius_share * size
    return (xx - size / 2 + 0.5) ** 2 + (yy - size / 2 + 0.5) ** 2 <= r * r


def is_scene_cut(previous: np.ndarray | None, current: np.ndarray, threshold: float = SCENE_CUT) -> bool:
    """Two small grey thumbnails ``(h, w) uint8``: a mean change over ``threshold`` is a cut."""
    if previous is None or previous.shape != current.shape:
        return False
    return float(cv2.absdiff(previous, current).mean()) > threshold


class FaceFinder:
    """Per-stream face finding, cropping, tracking and smoothing around one Segmenter.

    ``smoothing``: each face's temporal smoothing strength 0..1; ``fps``: the stream's frame
    rate (converts the memory of lost faces to frames); ``find_every``: frames between
    full-frame passes (1 = every frame; photos use 1); ``zoom``: the full-frame pass's zoom;
    ``verifier``: a :class:`~facecam.realtime.verifier.Verifier` that keeps only the proposals
    that are faces (without one, every blob of the full-frame pass is followed).
    """

    def __init__(
        self,
        segmenter,
        smoothing: float = 0.6,
        fps: float = 30.0,
        find_every: int = FIND_EVERY,
        zoom: float = FINDER_ZOOM,
        memory_seconds: float = MEMORY_SECONDS,
        verifier=None,
    ) -> None:
        if find_every < 1:
            raise ValueError(f"find_every must be >= 1, got {find_every}")
        if not 0 <= smoothing <= 1:
            raise ValueError(f"smoothing must be within 0..1, got {smoothing}")
        self.segmenter = segmenter
        self.verifier = verifier
        self.find_every = find_every
        self.zoom = zoom
        self.crop_size = int(max(segmenter.card.input_size))
        self.tracker = FaceTracker(round(memory_seconds * fps), smoothing)
        self._seed = seed_disc(self.crop_size)
        self._thumb: np.ndarray | None = None
        self._last_find = -(10**9)

    def reset(self) -> None:
        """A new stream: forget every face."""
        self.tracker.reset()
        self._thumb = None
        self._last_find = -(10**9)

    def process(self, frame: np.ndarray, index: int, timings: dict[str, float] | None = None) -> FrameFaces:
        """Find, crop, segment, track and merge the faces of one ``(H, W, 3) uint8 BGR`` frame.

        ``index`` numbers the frames of the stream (0, 1, ...). ``timings`` gets milliseconds
        under "finder", "crops" (preprocess + inference of the crops) and "merge".
        """
        spent = {"finder": 0.0, "crops": 0.0, "merge": 0.0}
        t0 = time.perf_counter()
        thumb = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
        cut = is_scene_cut(self._thumb, thumb)
        self._thumb = thumb
        if cut:
            self.tracker.reset()
        found_new = 0
        if cut or index - self._last_find >= self.find_every:
            found_new = len(self.tracker.propose(self.verified(frame, self.find(frame))))
            self._last_find = index
        t1 = time.perf_counter()
        spent["finder"] = (t1 - t0) * 1000
        probabilities, grays = self._segment_crops(frame, self.tracker.tracks)
        t2 = time.perf_counter()
        spent["crops"] = (t2 - t1) * 1000
        (gh, gw), scale = grid_shape(frame.shape[:2])
        mask = np.zeros((gh, gw), np.float32)
        for track, probability, gray in zip(list(self.tracker.tracks), probabilities, grays, strict=True):
            self._update_track(track, probability, gray, index, mask, scale)
        self.tracker.drop_duplicates()
        self.tracker.expire(index)
        spent["merge"] = (time.perf_counter() - t2) * 1000
        if timings is not None:
            timings.update(spent)
        return FrameFaces(mask, [t.face for t in self.tracker.tracks], list(self.tracker.held), found_new)

    def find(self, frame: np.ndarray) -> list[Box]:
        """The full-frame pass: boxes (frame pixels) of the face blobs the model sees."""
        height, width = frame.shape[:2]
        size = finder_size((height, width), self.crop_size, self.zoom)
        probability = self.segmenter.infer(processing.preprocess(frame, size, self.segmenter.card))
        ph, pw = probability.shape
        return boxes_of_blobs(probability, (width / pw, height / ph), FACE_THRESHOLD, MIN_BLOB_PIXELS)

    def verified(self, frame: np.ndarray, proposals: list[Box]) -> list[Box]:
        """The proposals no track follows yet that the verifier takes for faces (all without one)."""
        new = [box for box in proposals if not self.tracker.follows(box)]
        if self.verifier is None or not new:
            return new
        scores = self.verifier.scores_of(frame, [Crop.around(box) for box in new])
        return [box for box, score in zip(new, scores, strict=True) if score > FACE_THRESHOLD]

    def _segment_crops(self, frame: np.ndarray, tracks: list[Track]) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(N, s, s) float32`` face probability of each track's crop, in one batched run, and
        each crop in grey ``(s, s) uint8`` (for its smoothing)."""
        if not tracks:
            return np.zeros((0, self.crop_size, self.crop_size), np.float32), []
        crops = [crop_pixels(frame, t.crop, self.crop_size) for t in tracks]
        batch = np.concatenate([processing.preprocess(c, c.shape[:2], self.segmenter.card) for c in crops])
        return self.segmenter.infer_batch(batch), [cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops]

    def _update_track(
        self, track: Track, probability: np.ndarray, gray: np.ndarray, index: int, mask: np.ndarray, scale: float
    ) -> None:
        """Keep the crop's own face, smooth it in the crop, paste it into ``mask``, aim the next crop."""
        kept = keep_blobs_touching(probability, self._seed, FACE_THRESHOLD)
        box = blob_box(kept, FACE_THRESHOLD)
        if box is None:
            self.tracker.missed(track, index)
            return
        smoothed = track.smoother.update(kept, gray)
        paste_max(mask, smoothed, track.crop, scale)
        crop = track.crop
        self.tracker.seen(track, crop_box_to_frame(box, crop, self.crop_size))
        # the smoother's memory moves with the crop: old crop pixels -> frame -> new crop pixels
        track.smoother.warp(_between(crop, track.crop, self.crop_size))


def _between(old: Crop, new: Crop, size: int) -> np.ndarray:
    """``(2, 3)`` affine: pixels of ``old``'s crop -> pixels of ``new``'s crop (both ``size``)."""
    to_new = np.vstack([new.to_crop(size), [0, 0, 1]])
    from_old = np.linalg.inv(np.vstack([old.to_crop(size), [0, 0, 1]]))
    return (to_new @ from_old)[:2]

"""Every face in the frame: find faces at every scale, segment each in its own crop, track them.

    finder = FaceFinder(segmenter)              # one per stream (camera, video); photo=True for a photo
    result = finder.process(frame, index)       # (H, W, 3) uint8 BGR, frame number
    result.mask                                 # (h, w) float32 0..1 on the mask grid
    result.faces, result.held                   # boxes of the tracked and the just-lost faces

Why: at the model's own size (224 px on the frame's long side) a 40 px face in a group photo
becomes 7 px and is missed, while the same model segments it well once it fills a crop. So a
full-frame pass at a larger size proposes faces (due every ``find_every`` frames, passed over
while nothing changed outside the faces; always on a scene cut), each face is segmented in a
square crop around it at up to the model's input size (passes.crop_input_side), and the
crops' masks are merged into one frame mask. Between passes each face's crop follows it, so
the cost grows with the faces, not the frame; each face is smoothed in its own crop."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from facecam.face import FACE_THRESHOLD
from facecam.realtime import full_pass, processing
from facecam.realtime.crop_looks import held_again_unchanged, looks_at_crops
from facecam.realtime.crops import (
    Box,
    below_heads,
    blob_box,
    crop_box_to_frame,
    crop_pixels,
    crop_to_crop,
    faces_in_crop,
    keep_blobs_touching,
    paste_max,
    seed_disc,
    zeroed_outside_frame,
)
from facecam.realtime.edge_watch import EdgeWatch
from facecam.realtime.fine_scan import FineScan, FullPassMemory, tile_grid
from facecam.realtime.passes import (
    CROP_DETAIL,
    FIND_EVERY,
    FINDER_ZOOM,
    FINE_EVERY,
    SPLIT_THRESHOLD,
    crop_input_side,
    finder_settings,
    grid_shape,
    is_large_crop,
    may_hide_a_face,
)
from facecam.realtime.reuse import STILL_LEVELS, STILL_REUSE
from facecam.realtime.roll import next_lean
from facecam.realtime.scene import is_scene_cut, scene_thumbnail
from facecam.realtime.smoothing import EdgeHold
from facecam.realtime.tracking import FaceTracker, HeldFace, Track, aimed_centre, rechecked
from facecam.realtime.verifier import believed, scores_or_trusted

#: proposals at least this share of the frame's long side are faces as the segmenter sees them
#: (it was trained on such framings); the verifier checks the smaller ones
TRUSTED_FACE_SHARE = 1 / 3
#: the edge hold's band (see smoothing.EdgeHold) per unit of smoothing strength: 0.2 at the default 0.6
EDGE_HOLD_PER_STRENGTH = 1 / 3
#: how long a lost face stays anonymised, in seconds (converted with the stream's frame rate)
MEMORY_SECONDS = 0.5


@dataclass
class FrameFaces:
    """What :meth:`FaceFinder.process` found in one frame."""

    mask: np.ndarray  # (h, w) float32 0..1 on the mask grid
    faces: list[Box] = field(default_factory=list)  # faces tracked in this frame (frame pixels)
    held: list[HeldFace] = field(default_factory=list)  # faces lost within the memory
    levels: processing.Halvings | None = None  # the frame's halvings, shared with the later steps
    still: np.ndarray | None = None  # (h, w) bool on the grid: where the picture stood still (EdgeHold.still)


class FaceFinder:
    """Per-stream face finding, cropping, tracking and smoothing around one Segmenter.

    ``smoothing``: each face's temporal smoothing strength 0..1; ``fps``: the stream's frame
    rate (converts the memory of lost faces to frames); ``find_every``: frames between
    full-frame passes (1 = every frame; photos use 1); ``zoom``: the full-frame pass's zoom;
    ``verifier``: a :class:`~facecam.realtime.verifier.Verifier` that keeps only the proposals
    it scores above ``verify_threshold`` (without one, every blob of the full-frame pass is
    followed); ``reuse_still``: a face whose crop shows what it showed, still or moved by a
    shift, reuses the model's last look (see realtime.reuse) for up to ``still_reuse`` frames
    while no block differs by over ``still_levels``; ``skip_unchanged_tiles``: a
    stream's small-face pass passes over the tiles that have not changed, and its full-frame pass
    over a frame with nothing new outside the faces (see fine_scan.FullPassMemory; off in
    anonymize); ``photo``: the finder of one photo, whose large crops keep the model's full size
    (see passes.LARGE_CROP_INPUT: a stream's are segmented smaller) and whose first looks are
    averaged with the mirror image's (processing.mirror_averaged); ``watch_edges``: a stream
    looks for faces coming in at the edge the picture moves in from (see realtime.edge_watch; on
    in anonymize); ``follow_detail``: see passes.ANONYMIZE_FOLLOW_DETAIL; ``confirm_tracks``: see
    tracking.rechecked (off in anonymize)."""

    def __init__(
        self,
        segmenter,
        smoothing: float = 0.6,
        fps: float = 30.0,
        find_every: int = FIND_EVERY,
        fine_every: int = FINE_EVERY,
        zoom: float = FINDER_ZOOM,
        memory_seconds: float = MEMORY_SECONDS,
        verifier=None,
        verify_threshold: float = 0.5,
        reuse_still: bool = True,
        skip_unchanged_tiles: bool = True,
        split_threshold: float = SPLIT_THRESHOLD,
        find_cores: bool = False,
        photo: bool = False,
        still_levels: float = STILL_LEVELS,
        still_reuse: int = STILL_REUSE,
        watch_edges: bool = False,
        follow_detail: float = CROP_DETAIL,
        turn_leaning: bool = True,
        confirm_tracks: bool = True,
    ) -> None:
        if find_every < 1 or fine_every < 1:
            raise ValueError(f"find_every and fine_every must be >= 1, got {find_every} and {fine_every}")
        if not 0 <= smoothing <= 1:
            raise ValueError(f"smoothing must be within 0..1, got {smoothing}")
        self.segmenter, self.verifier, self.verify_threshold = segmenter, verifier, verify_threshold
        self.find_every, self.fine_every, self.zoom = find_every, fine_every, zoom
        self.reuse_still, self.still_levels, self.still_reuse = reuse_still, still_levels, still_reuse
        self.split_threshold, self.find_cores, self.follow_detail = split_threshold, find_cores, follow_detail
        self.turn_leaning, self.confirm_tracks = turn_leaning, confirm_tracks
        self.stream = not photo
        self.crop_size = int(max(segmenter.card.input_size))
        self.tracker = FaceTracker(round(memory_seconds * fps), smoothing)
        self.edge_hold = EdgeHold(EDGE_HOLD_PER_STRENGTH * smoothing)
        self._thumb: np.ndarray | None = None
        self._frame_hw: tuple[int, int] | None = None
        self._last_find = self._last_fine = -(10**9)
        self.scan = FineScan(skip_unchanged_tiles)
        self._split_faces: list[Box] = []
        self.pass_memory = FullPassMemory()
        self.edge_watch = EdgeWatch() if watch_edges and not photo else None

    def follow_mode(self, mode: str) -> None:
        """Look for faces as ``mode`` needs (see finder_settings), keeping every track: the camera
        window's keys and ``FaceStream.mode`` switch modes mid-stream."""
        settings = finder_settings(mode)
        self.fine_every, self.verify_threshold = settings["fine_every"], settings["verify_threshold"]
        self.split_threshold, self.find_cores = settings["split_threshold"], settings["find_cores"]
        self.still_levels, self.still_reuse = settings["still_levels"], settings["still_reuse"]
        self.follow_detail, self.scan.skip_unchanged = settings["follow_detail"], settings["skip_unchanged_tiles"]
        self.turn_leaning, self.confirm_tracks = settings["turn_leaning"], settings["confirm_tracks"]
        if not self.turn_leaning:  # every face looked at upright from the next frame on
            for track in self.tracker.tracks:
                track.lean = 0.0
        if not settings["watch_edges"]:
            self.edge_watch = None
        elif self.edge_watch is None and self.stream:
            self.edge_watch = EdgeWatch()

    def reset(self) -> None:
        """A new stream: forget every face."""
        self.tracker.reset()
        self.edge_hold.reset()
        self._thumb = self._frame_hw = None
        self._last_find = self._last_fine = -(10**9)
        self.scan = FineScan(self.scan.skip_unchanged)
        self._split_faces = []
        self.pass_memory.reset()
        if self.edge_watch is not None:
            self.edge_watch.reset()

    def process(self, frame: np.ndarray, index: int, timings: dict[str, float] | None = None) -> FrameFaces:
        """Find, crop, segment, track and merge the faces of one ``(H, W, 3) uint8 BGR`` frame.

        ``index`` numbers the frames of the stream (0, 1, ...). ``timings`` gets milliseconds
        under "finder", "crops" (preprocess + inference of the crops) and "merge".
        """
        spent = {"finder": 0.0, "crops": 0.0, "merge": 0.0}
        t0 = time.perf_counter()
        levels = processing.Halvings(frame)
        thumb = scene_thumbnail(frame, levels)
        # a new frame size (a call's video adapting to the bandwidth, a camera re-opened) is a
        # cut too: every crop is in the old frame's pixels and would miss its face
        first = self._frame_hw is None
        resized = not first and self._frame_hw != frame.shape[:2]
        cut = resized or is_scene_cut(self._thumb, thumb)
        self._thumb, self._frame_hw = thumb, frame.shape[:2]
        if cut:
            self.tracker.reset()
            self.edge_hold.reset()
            if self.edge_watch is not None:
                self.edge_watch.reset()
        if self.edge_watch is not None:  # the held faces move with a pan before this frame's are held
            self.tracker.shift_held(self.edge_watch.observe(thumb, frame.shape[:2]))
        zoomed = full_pass.zoomed_size(self.segmenter, frame.shape[:2], self.zoom)
        fine_due = zoomed is not None and index - self._last_fine >= self.fine_every
        # the zoomed pass whole when faces are needed now or there is no time to spread its tiles
        # one a frame, else in tiles (see fine_scan)
        whole = first or cut or (fine_due and len(tile_grid(zoomed)) > self.fine_every)
        if fine_due and not whole:
            self.scan.start()
            self._last_fine = index
        candidates = []
        due = whole or index - self._last_find >= self.find_every
        if due:
            self._recheck_tracks(frame)
        # in a stream whose small faces are looked for in changed tiles only, the pass is passed
        # over while nothing changed outside the faces (see fine_scan.FullPassMemory)
        if due and not whole and self.scan.skip_unchanged:
            if self.pass_memory.may_pass_over(thumb, self.tracker.tracks, frame.shape[:2]):
                self.pass_memory.passed_over()
                self._last_find, due = index, False
        if due:
            candidates = self.find(frame, whole, levels)
            self.tracker.propose(self.verified(frame, candidates, index, levels), frame.shape[:2])
            self._last_find = index
            if whole:
                self._last_fine = index
                self.scan = FineScan(self.scan.skip_unchanged)  # a cut or a new size: old tiles mean nothing
                if zoomed is not None:
                    self.scan.looked_all(zoomed, thumb)
        if self.scan.busy and not whole and zoomed is not None:
            tile_faces = self._tile_blobs(frame, zoomed, thumb)
            self.tracker.propose(self.verified(frame, tile_faces, index, levels), frame.shape[:2])
            candidates += tile_faces
        if self.edge_watch is not None and zoomed is not None:
            edge_faces = self._edge_blobs(frame, zoomed, thumb, whole)
            self.tracker.propose(self.verified(frame, edge_faces, index, levels), frame.shape[:2])
            candidates += edge_faces
        t1 = time.perf_counter()
        spent["finder"] = (t1 - t0) * 1000
        (gh, gw), scale = grid_shape(frame.shape[:2])
        mask = np.zeros((gh, gw), np.float32)
        merge_ms = self._segment_and_merge(frame, list(self.tracker.tracks), index, mask, scale, levels)
        if candidates:
            # A proposal inside a track's box was taken for that track's face; now that the crop
            # pass has fitted each box to its face, one that no box covers is a face of its own
            # (several faces merged into one blob at the model's size, say), and so may be what
            # a tall one holds under the face found at its head.
            candidates += below_heads(candidates, [t.face for t in self.tracker.tracks])
            new = self.tracker.propose(self.verified(frame, candidates, index, levels), frame.shape[:2])
            merge_ms += self._segment_and_merge(frame, new, index, mask, scale, levels)
        if self._split_faces:
            # the faces that the first looks at new tracks found away from their centre (see
            # _update_track), segmented now; split once: the pieces' own crops propose nothing
            new = self.tracker.propose(self.verified(frame, self._split_faces, index, levels), frame.shape[:2])
            merge_ms += self._segment_and_merge(frame, new, index, mask, scale, levels)
            self._split_faces = []
        t2 = time.perf_counter()
        spent["crops"] = (t2 - t1) * 1000
        self.tracker.drop_duplicates(index)
        self.tracker.expire(index)
        if due:
            settled = all(self.tracker.follows(box) for box in candidates)
            self.pass_memory.ran(thumb, self.tracker.tracks, settled)
        spent["merge"] = merge_ms + (time.perf_counter() - t2) * 1000
        spent["crops"] -= merge_ms
        if timings is not None:
            timings.update(spent)
        mask = self.edge_hold.update(mask, levels.shrunk_gray((gw, gh)))
        faces = [t.face for t in self.tracker.tracks]
        return FrameFaces(mask, faces, list(self.tracker.held), levels, self.edge_hold.still)

    def find(self, frame: np.ndarray, fine: bool = True, levels: processing.Halvings | None = None) -> list[Box]:
        """The full-frame pass (see realtime.full_pass): boxes (frame pixels) of the faces the
        model sees, at its own size and (``fine``) zoomed."""
        return full_pass.proposals(
            self.segmenter,
            frame,
            zoom=self.zoom,
            find_cores=self.find_cores,
            fine=fine,
            levels=levels,
            stream=self.stream,
        )

    def _tile_blobs(self, frame: np.ndarray, zoomed: tuple[int, int], thumb: np.ndarray) -> list[Box]:
        """The small faces in the next changed tile of the zoomed pass (none when every tile left is unchanged)."""
        tile = self.scan.next_tile(thumb, [t.face for t in self.tracker.tracks], frame.shape[:2])
        if tile is None:
            return []
        return full_pass.tile_proposals(self.segmenter, frame, tile, zoomed, self.find_cores)

    def _edge_blobs(self, frame: np.ndarray, zoomed: tuple[int, int], thumb: np.ndarray, whole: bool) -> list[Box]:
        """The faces in the strips along the edges the picture came in from (see
        realtime.edge_watch); none in a frame the whole zoomed pass just looked at."""
        strips = self.edge_watch.due(thumb, frame.shape[:2], zoomed, self.crop_size)
        if whole:
            self.edge_watch.looked_all()
            return []
        view = self.edge_watch.view_hw
        return [
            box
            for tile in strips
            for box in full_pass.tile_proposals(self.segmenter, frame, tile, view, self.find_cores)
        ]

    def _segment_and_merge(
        self,
        frame: np.ndarray,
        tracks: list[Track],
        index: int,
        mask: np.ndarray,
        scale: float,
        levels: processing.Halvings | None = None,
    ) -> float:
        """The crop pass for ``tracks``; each track's face then goes into ``mask`` (in place).
        Returns the milliseconds spent merging (the rest is the crop pass)."""
        if not tracks:
            return 0.0
        probabilities, grays = self._segment_crops(frame, tracks, levels)
        t0 = time.perf_counter()
        for track, probability, gray in zip(tracks, probabilities, grays, strict=True):
            self._update_track(track, probability, gray, index, mask, scale, frame.shape[:2])
        return (time.perf_counter() - t0) * 1000

    def _recheck_tracks(self, frame: np.ndarray) -> None:
        """Drop the tracks the verifier now doubts (see tracking.rechecked): a patch that passed
        once (a helmet ring in one frame's light) is not followed for ever; a real face turning
        away for a moment stays. Dropped, not held: it was not a face."""
        tracks = self.tracker.tracks
        scores = scores_or_trusted(self.verifier, frame, [t.face for t in tracks], TRUSTED_FACE_SHARE)
        self.tracker.tracks = rechecked(tracks, scores, self.verify_threshold, self.confirm_tracks)

    def verified(
        self, frame: np.ndarray, proposals: list[Box], index: int, levels: processing.Halvings | None = None
    ) -> list[Box]:
        """The proposals no track follows yet that the verifier takes for faces (all without one),
        but those held again unlooked at (see crop_looks.held_again_unchanged)."""
        new = [box for box in proposals if not self.tracker.follows(box)]
        if self.reuse_still:
            unchanged = (self.tracker, frame, index, self.still_levels, levels)
            new = [box for box in new if not held_again_unchanged(box, *unchanged)]
        return believed(self.verifier, frame, new, self.verify_threshold, TRUSTED_FACE_SHARE)

    def crop_input(self, track: Track) -> int:
        """The side, in model pixels, of a track's crop (passes.crop_input_side; ``follow_detail``
        once its face was seen); the track remembers whether it was a large one."""
        fixed = getattr(self.segmenter, "few_shapes", False)
        was_large = track.large
        track.large = self.stream and not fixed and is_large_crop(track.crop.side, was_large)
        detail = self.follow_detail if self.stream and track.frames > 0 else CROP_DETAIL
        return crop_input_side(track.crop.side, self.crop_size, self.stream, was_large, fixed, detail)

    def _segment_crops(
        self, frame: np.ndarray, tracks: list[Track], levels: processing.Halvings | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The ``(s, s) float32`` face probability of each track's crop (see crop_looks) and each
        crop in grey (for its smoothing)."""
        sizes = [self.crop_input(t) for t in tracks]
        crops = [crop_pixels(frame, t.crop, s, levels) for t, s in zip(tracks, sizes, strict=True)]
        grays = [cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops]
        reuse = (self.still_levels, self.still_reuse) if self.reuse_still else None
        turn = frame.shape[:2] if self.turn_leaning else None
        probabilities = looks_at_crops(self.segmenter, crops, sizes, tracks, grays, self.stream, reuse, turn)
        return probabilities, grays

    def _update_track(
        self,
        track: Track,
        probability: np.ndarray,
        gray: np.ndarray,
        index: int,
        mask: np.ndarray,
        scale: float,
        frame_hw: tuple[int, int],
    ) -> None:
        """Keep the crop's own face, smooth it in the crop, paste it into ``mask``, aim the next crop."""
        # past the frame's edge the crop repeats the edge pixels: a neck at the bottom edge would
        # run on as a streak and the face's box (and the next crop) grow without end
        size = probability.shape[0]
        probability = zeroed_outside_frame(probability, track.crop, frame_hw)
        kept = keep_blobs_touching(probability, seed_disc(size, aimed_centre(track, size)), FACE_THRESHOLD)
        box = blob_box(kept, FACE_THRESHOLD)
        if box is None and track.frames == 0:
            # The first look found no face at its centre: the blob may hold several faces (two
            # heads side by side) and the crop is centred on none. Every face it shows is proposed
            # on its own. (Not after a look that found its face: the weak blobs around a face, a
            # hand or the neck, then became faces for a frame and flickered.)
            found = faces_in_crop(probability, track.crop, self.split_threshold, full_pass.MIN_BLOB_PIXELS)
            self._split_faces += [face for face in found if face.size >= full_pass.MIN_FACE_SIDE]
        if box is None:
            self.tracker.missed(track, index, may_hide_a_face(track.face, track.crop.side, size, frame_hw, self.stream))
            return
        if self.stream and track.frames > 0 and track.reused == 0:  # a new look: it may lean otherwise now
            blob = kept > FACE_THRESHOLD
            track.lean = next_lean(track.lean, blob, kept, track.face, frame_hw) if self.turn_leaning else 0.0
        smoothed = track.smoother.update(kept, gray)
        paste_max(mask, smoothed, track.crop, scale)
        crop = track.crop
        self.tracker.seen(track, crop_box_to_frame(box, crop, size), frame_hw, index)
        # the smoother's memory moves with the crop: old crop pixels -> frame -> new crop pixels
        if track.crop != crop:  # (a crop that stayed put keeps it: an identity warp, two a face)
            track.smoother.warp(crop_to_crop(crop, track.crop, size))

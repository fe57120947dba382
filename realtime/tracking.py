"""Face tracks: which faces are in the frame, where each one's crop goes next, and the faces
that were just lost (held for a short memory so that anonymisation never lets one slip).

The tracker knows nothing of the model: :class:`facecam.realtime.faces.FaceFinder` tells it
what the full-frame pass proposed (:meth:`FaceTracker.propose`) and what each crop found
(:meth:`FaceTracker.seen` / :meth:`FaceTracker.missed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from facecam.realtime.crops import CROP_MARGIN, Box, Crop, corners, fit_crop, head_of, iou, iou_matrix, ious_with
from facecam.realtime.smoothing import TemporalSmoother

#: a proposal overlapping a track's face this much (IoU) is that face, not a new one
SAME_FACE_IOU = 0.2
#: two tracks whose faces overlap this much have converged on one face: the younger goes
DUPLICATE_IOU = 0.5
#: a face lost this many frames in a row ends its track (a blink of the model is forgiven)
MISS_LIMIT = 2
#: a face whose new box overlaps its last one (or, at its first look, its proposal) less than this
#: left something behind (see FaceTracker.seen): 3.7% of the followed faces' updates in the crowd
#: clip, where two heads one above the other merged and the track settled on the lower one,
#: leaving the upper face in clear view for 5 frames
LEFT_BEHIND_IOU = 0.3
#: a strip of the last box this thin (frame pixels) beside the new one holds no face (see left_behind)
MIN_LEFT_BEHIND = 4.0
#: share of the way the crop moves towards where the face now is, each frame: damps jitter
#: (a crop that shakes makes the mask shake); a face that jumps further than
#: ``JUMP_SHARE`` of its crop is followed at once
CROP_FOLLOW = 0.6
JUMP_SHARE = 0.25
#: a target crop within this share of the crop's side of the current one (centre and side) is
#: the same crop: a still face's box wobbles by a pixel or two from frame to frame
CROP_STILL_SHARE = 0.02
#: a lost face is held (anonymised at its last place) grown by this factor
HELD_GROWTH = 1.25
#: a held face is covered where the picture took it too once that is this many frame px away
MIN_HOLD_MOVE = 1.0
#: a proposal whose first look showed no face is not proposed again (the same box: IoU over
#: DUPLICATE_IOU; the faces found in its crop are other boxes) for this many frames: the same
#: blob comes back from the proposals that follow the crop pass in the same frame. Not
#: longer: looked at again in a later full-frame pass, a face missed once is often found
#: (group1.mp4 anonymize recall 0.97 at 1 frame, 0.94 at 25)
REJECT_FRAMES = 1


@dataclass
class Track:
    """One face followed from frame to frame."""

    id: int
    crop: Crop  # where the model looks for it in the next frame
    face: Box  # its skin box in the last frame it was seen (frame pixels)
    smoother: TemporalSmoother = field(repr=False)
    misses: int = 0
    frames: int = 0  # frames it was seen in
    # the model's last look at this face, reused while the crop shows it, still or shifted (see realtime.reuse)
    looked_crop: Crop | None = field(default=None, repr=False)
    looked_gray: np.ndarray | None = field(default=None, repr=False)
    looked_probability: np.ndarray | None = field(default=None, repr=False)
    reused: int = 0  # frames since the model last looked
    # the verifier's best score of its own box (as the crop pass fitted it) at a recheck; 1 for a
    # face big enough to be trusted unscored (see tracking.rechecked)
    best_score: float = 0.0
    large: bool = False  # its last crop was segmented at passes.LARGE_CROP_INPUT
    # degrees its face leans, counter-clockwise: its crops are turned upright by it (see realtime.roll)
    lean: float = 0.0
    # the tracker's pan (see FaceTracker.shift_held) when ``face`` was found, and where, when and
    # at which pan the face was first seen
    pan_at_face: tuple[float, float] = (0.0, 0.0)
    origin: Box | None = None
    origin_frame: int = 0
    origin_pan: tuple[float, float] = (0.0, 0.0)


def aimed_centre(track: Track, size: int) -> tuple[float, float]:
    """Where, in the pixels of ``track``'s ``size x size`` crop, its face is looked for: the
    centre of its last box (of its head, for a first look; see crops.head_of), where Crop.around
    aimed the crop (a crop pushed inside the frame is not centred on its face)."""
    fx, fy = head_of(track.face, track.frames == 0).center
    cx, cy = track.crop.to_crop(size) @ np.array([fx, fy, 1.0])
    return float(cx), float(cy)


@dataclass(frozen=True)
class HeldFace:
    """A face the model lost, or a part of a box a track left (see left_behind): kept
    anonymised at ``box`` up to and including frame ``until``, and at ``box`` moved by
    ``offset``, where the picture has taken it since (a pan; see FaceTracker.shift_held). (A
    dropped duplicate's first face is held where the picture has taken it: one place.)
    ``first_new_id``: the tracks numbered from this on began after it was held; only such a
    track can be that face found again (see FaceTracker.expire)."""

    box: Box
    until: int
    first_new_id: int = 0
    offset: tuple[float, float] = (0.0, 0.0)
    # a proposal whose first look showed no face: the proposal, and the crop and its grey that
    # the model looked at (see FaceTracker.unseen_hold_of)
    unseen: Box | None = None
    looked: tuple[Crop, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def boxes(self) -> list[Box]:
        """Where it is covered: ``box``, and ``box`` moved by ``offset`` once that is MIN_HOLD_MOVE
        or more (a still camera's measured shift wanders by a fraction of a pixel a frame)."""
        if max(abs(self.offset[0]), abs(self.offset[1])) < MIN_HOLD_MOVE:
            return [self.box]
        return [self.box, self.box.shifted(*self.offset)]


class FaceTracker:
    """Tracks plus the memory of lost faces. ``memory_frames``: how long a lost face is held;
    ``smoothing``: the strength of each track's own temporal smoothing (0..1)."""

    def __init__(self, memory_frames: int, smoothing: float = 0.6, margin: float = CROP_MARGIN) -> None:
        if memory_frames < 0:
            raise ValueError(f"memory_frames must be >= 0, got {memory_frames}")
        self.memory_frames = memory_frames
        self.smoothing = smoothing
        self.margin = margin
        self.tracks: list[Track] = []
        self.held: list[HeldFace] = []
        self.rejected: list[HeldFace] = []  # proposals that were no face, until when they stay so
        self.pan = (0.0, 0.0)  # the picture's shift summed over the stream's frames (see shift_held)
        self._next_id = 0

    def reset(self) -> None:
        """Forget every face and every held one: a scene cut, or a new stream."""
        self.tracks.clear()
        self.held.clear()
        self.rejected.clear()
        self.pan = (0.0, 0.0)

    def follows(self, face: Box) -> bool:
        """Whether a track already follows the face at ``face``."""
        if not self.tracks:
            return False
        faces = corners([t.face for t in self.tracks])
        x, y = face.center
        centred = (faces[:, 0] <= x) & (x <= faces[:, 2]) & (faces[:, 1] <= y) & (y <= faces[:, 3])
        return bool(np.any((ious_with(face, faces) > SAME_FACE_IOU) | centred))

    def propose(self, faces: list[Box], frame_hw: tuple[int, int]) -> list[Track]:
        """Start a track for each proposed face that no track follows yet; returns the new ones."""
        new = []
        for face in faces:
            if self.follows(face) or any(iou(face, r.box) > DUPLICATE_IOU for r in self.rejected):
                continue
            crop = self.first_crop(face, frame_hw)
            track = Track(self._next_id, crop, face, TemporalSmoother(self.smoothing), pan_at_face=self.pan)
            self._next_id += 1
            self.tracks.append(track)
            new.append(track)
        return new

    def first_crop(self, proposal: Box, frame_hw: tuple[int, int]) -> Crop:
        """Where the model first looks for the face of ``proposal``."""
        return fit_crop(Crop.around(proposal, self.margin, proposal=True), frame_hw)

    def seen(self, track: Track, face: Box, frame_hw: tuple[int, int], frame_index: int) -> None:
        """``track``'s crop found its face at ``face``: aim the next crop there (damped).

        A face found far from its last box (IoU under LEFT_BEHIND_IOU) may be another face: a
        track on two heads merged into one blob can settle on the lower one. The last box is
        then held for the memory (anonymize covers it), as if that face were lost, so the
        face left behind stays covered until a pass finds it again: the parts of the last box
        that the new one leaves (see left_behind), where that face is. The same for a first
        look (the last box is then the proposal's) that finds a face much smaller than what was
        proposed: a face split by sunglasses, of which the crop paints one cheek, stayed in
        clear view for 10 frames of the group-5 clip while only the cheek was followed (6 since;
        the share of the frame that anonymize covers there 0.295 -> 0.305, in group-1 0.763 ->
        0.797: the rest of a blob of a head and its body is held too)."""
        if iou(track.face, face) < LEFT_BEHIND_IOU:
            for part in left_behind(track.face, face):
                self.hold(part, frame_index, self.pan_since(track.pan_at_face))
        target = fit_crop(Crop.around(face, self.margin), frame_hw)
        old = track.crop
        if _barely_moved(old, target):
            target = old  # the face is where the crop expects it: a crop that twitches by a pixel
            # makes the mask twitch with it and the model look again at what it just saw
        jump = max(abs(target.cx - old.cx), abs(target.cy - old.cy)) > JUMP_SHARE * old.side
        follow = 1.0 if jump else CROP_FOLLOW
        track.crop = Crop(
            old.cx + follow * (target.cx - old.cx),
            old.cy + follow * (target.cy - old.cy),
            old.side + follow * (target.side - old.side),
        )
        track.face, track.pan_at_face = face, self.pan
        if track.origin is None:
            track.origin, track.origin_frame, track.origin_pan = face, frame_index, self.pan
        track.misses = 0
        track.frames += 1

    def missed(self, track: Track, frame_index: int, may_hide_a_face: bool = True) -> None:
        """``track``'s crop found no face in frame ``frame_index``; after MISS_LIMIT misses in a
        row (a track never seen: at its first miss) the track ends and its face is held for
        ``memory_frames`` frames from then.

        A proposal never seen (its first look found no face at its centre) is held only when
        ``may_hide_a_face`` (see passes.may_hide_a_face): a blob of a ceiling or a suit that the
        model saw whole, shrunk, is no face to cover; its faces are proposed on their own."""
        track.misses += 1
        if track.frames == 0:
            self.rejected.append(HeldFace(track.face, frame_index + REJECT_FRAMES))
        if track.frames == 0 or track.misses >= MISS_LIMIT:
            self.tracks.remove(track)
            if track.frames > 0:
                self.hold(track.face, frame_index, self.pan_since(track.pan_at_face))
            elif may_hide_a_face:
                looked = (track.looked_crop, track.looked_gray) if track.looked_gray is not None else None
                self.hold(track.face, frame_index, self.pan_since(track.pan_at_face), track.face, looked)

    def hold(
        self,
        box: Box,
        frame_index: int,
        offset: tuple[float, float] = (0.0, 0.0),
        unseen: Box | None = None,
        looked: tuple[Crop, np.ndarray] | None = None,
    ) -> None:
        """Cover ``box`` for the memory, grown a little: where it was, and moved by ``offset``
        (the pan since it was seen; see shift_held). ``unseen``, ``looked``: see HeldFace."""
        if self.memory_frames > 0:
            until = frame_index + self.memory_frames
            self.held.append(HeldFace(box.grown(HELD_GROWTH), until, self._next_id, offset, unseen, looked))

    def unseen_hold_of(self, proposal: Box, frame_index: int) -> HeldFace | None:
        """The live hold of a proposal whose first look showed no face, and which ``proposal``
        proposes again (the same box, where it was or moved with the picture: IoU over
        DUPLICATE_IOU), with the look it had; None if none."""
        live = [h for h in self.held if h.looked is not None and h.until >= frame_index]
        if not live:
            return None
        # one array operation for the crowd of holds (a panning crowd holds ~100 such blobs);
        # the same arithmetic as Box.shifted and iou, so the same answer to the last bit
        where = corners([h.unseen for h in live])
        offsets = np.array([h.offset for h in live], np.float64)
        moved = where + np.concatenate([offsets, offsets], axis=1)
        matched = np.maximum(ious_with(proposal, where), ious_with(proposal, moved)) > DUPLICATE_IOU
        first = np.flatnonzero(matched)
        return live[first[0]] if first.size else None

    def hold_again(self, held: HeldFace, proposal: Box, frame_index: int) -> None:
        """Hold ``proposal`` for the memory in place of ``held`` (see unseen_hold_of), keeping the
        look ``held`` had: later frames are compared with what the model saw, not with a frame
        that was only like it."""
        self.held = [h for h in self.held if h is not held]  # that one: another may equal it but for its look
        self.hold(proposal, frame_index, unseen=proposal, looked=held.looked)

    def pan_since(self, pan: tuple[float, float]) -> tuple[float, float]:
        """How far the picture moved since the tracker's pan was ``pan``."""
        return self.pan[0] - pan[0], self.pan[1] - pan[1]

    def shift_held(self, shift: tuple[float, float]) -> None:
        """The picture moved by ``(dx, dy)`` frame pixels since the last frame: each held face is
        covered where it was lost and, moved with the picture, where the picture took it.

        Under a panning camera a face held where it was lost drifts out of its hold within the
        memory (a 17 px face of the group-4 clip, 4 px a frame, was half out of it in 3 frames:
        faces in clear view 3+ frames 5 -> 0 with the moved place); a camera that follows a
        walking person keeps that person where the hold began, so that place stays covered
        too (moving the holds alone lost face-frames in group-5 and group-1)."""
        dx, dy = shift
        if dx or dy:
            self.pan = (self.pan[0] + dx, self.pan[1] + dy)
            self.held = [replace(h, offset=(h.offset[0] + dx, h.offset[1] + dy)) for h in self.held]

    def drop_duplicates(self, frame_index: int) -> None:
        """Two tracks on one face (they converged): keep the one seen longer. What the dropped
        track's box holds beyond its twin's is held (see left_behind): a track whose box took in
        a head above the face it converged on (a man standing behind a woman, his face and her
        body one blob) was the only cover of that head, which then showed for 8 frames until a
        pass proposed it again (group1.mp4; with this hold the clip's uncovered face-frames at
        four phases of its zoomed pass went 68 -> 37, and no other clip's changed). And a dropped
        track that began on another face leaves that face held: a man's face whose chin touched
        the forehead of the woman below him made one blob with hers, his track slid onto her face
        and was dropped, and he stayed in clear view (group1.mp4: 9 frames, once the blobs seen
        shrunk mid-frame were no longer held, see passes.may_hide_a_face). Only a face begun on
        within the memory, moved with the picture since; not when the track that slid is the
        older one (the younger is dropped then, and the slid one's first face is not held)."""
        keep: list[Track] = []
        for track in sorted(self.tracks, key=lambda t: -t.frames):
            twin = next((k for k in keep if iou(track.face, k.face) > DUPLICATE_IOU), None)
            if twin is None:
                keep.append(track)
                continue
            for part in left_behind(track.face, twin.face):
                self.hold(part, frame_index)
            if track.origin is not None and frame_index - track.origin_frame <= self.memory_frames:
                began = track.origin.shifted(*self.pan_since(track.origin_pan))
                if iou(began, twin.face) < LEFT_BEHIND_IOU:
                    for part in left_behind(began, twin.face):
                        self.hold(part, frame_index)
        self.tracks = [t for t in self.tracks if t in keep]

    def expire(self, frame_index: int) -> None:
        """Forget held faces whose memory ended before ``frame_index``, and those a track found
        again; and the rejected proposals whose time is up.

        Found again: by a track that began after the face was held. A track that was already
        following a neighbour is not that face, however much their boxes overlap: in the crowd
        clip a woman's hold (her face and shoulders) overlapped the man's beside her by IoU
        0.32, was dropped, and her face showed for 4 frames as she left the frame."""
        self.rejected = [r for r in self.rejected if r.until >= frame_index]
        live = [h for h in self.held if h.until >= frame_index]
        if live and self.tracks:
            faces = [t.face for t in self.tracks]
            overlap = iou_matrix([h.box for h in live], faces)
            if any(len(h.boxes) > 1 for h in live):  # found again at either place
                overlap = np.maximum(overlap, iou_matrix([h.boxes[-1] for h in live], faces))
            newer = np.array([t.id for t in self.tracks])[None, :] >= np.array([h.first_new_id for h in live])[:, None]
            found_again = (np.where(newer, overlap, 0.0) > SAME_FACE_IOU).any(axis=1)
            live = [h for h, again in zip(live, found_again, strict=True) if not again]
        self.held = live


def left_behind(old: Box, new: Box) -> list[Box]:
    """The parts of ``old`` that ``new`` leaves, as boxes that do not overlap ``new`` or each
    other: the strips of ``old`` above and below ``new`` (its full width), and left and right of
    it (its height beside ``new``); strips thinner than MIN_LEFT_BEHIND pixels are left out. All
    of ``old`` when ``new`` lies outside it, none when ``new`` covers it.

    Every strip, not only the largest: where a track on a face and the body below it settled on
    the chest, the largest strip (then of the full height) was the one beside the chest, not
    the one above it where the face was, and the face stayed in clear view for 3 frames
    (group1.mp4, frames 211-213). (The track's own face never lets its parts go: only a track
    begun after a hold does, see FaceTracker.expire.)"""
    if new.x1 <= old.x0 or old.x1 <= new.x0 or new.y1 <= old.y0 or old.y1 <= new.y0:
        return [old]
    top, bottom = max(old.y0, new.y0), min(old.y1, new.y1)  # the rows beside new
    strips = [
        Box(old.x0, old.y0, old.x1, new.y0),
        Box(old.x0, new.y1, old.x1, old.y1),
        Box(old.x0, top, new.x0, bottom),
        Box(new.x1, top, old.x1, bottom),
    ]
    return [b for b in strips if min(b.x1 - b.x0, b.y1 - b.y0) >= MIN_LEFT_BEHIND]


def _barely_moved(old: Crop, new: Crop) -> bool:
    """Whether ``new`` is ``old`` within CROP_STILL_SHARE of its side, in centre and in size."""
    limit = CROP_STILL_SHARE * old.side
    return max(abs(new.cx - old.cx), abs(new.cy - old.cy), abs(new.side - old.side)) <= limit


def rechecked(tracks: list[Track], scores: list[float | None], threshold: float, confirm: bool = True) -> list[Track]:
    """The ``tracks`` that stay after a recheck by the verifier (``scores``: each one's face
    probability, None for a face it does not judge, a big one, which stays). Each track keeps the
    best score its own box got (``Track.best_score``, 1 once it was trusted unscored).

    A track confirmed at ``threshold`` (its best score over it) stays down to half of it: a real
    face turning away for a moment is kept (hysteresis). With ``confirm``, a track never confirmed
    must score over the threshold itself: it came in on a proposal's box, and the box its face was
    fitted to is what the verifier now judges. Without that rule the sample clip's helmet ring,
    proposed in the first frame, scored 0.33-0.35 at every recheck and was painted as a face in all
    240 frames. The best score, not a flag, is kept, so that a track confirmed under anonymize's
    lower threshold is judged again at a higher one after a mode switch. Without ``confirm``
    (anonymize) every track stays down to half the threshold."""
    kept = []
    for track, score in zip(tracks, scores, strict=True):
        track.best_score = max(track.best_score, 1.0 if score is None else float(score))
        confirmed = track.best_score > threshold
        floor = threshold / 2 if confirmed or not confirm else threshold
        if score is None or score > floor:
            kept.append(track)
    return kept

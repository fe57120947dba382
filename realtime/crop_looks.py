"""The model's looks at the tracked faces' crops: one run per crop size, first looks apart, and
a face whose crop shows what the model last saw there, still or shifted, given that look again
(see realtime.reuse) instead of a new one.

    probabilities = looks_at_crops(segmenter, crops, sizes, tracks, grays, stream=True, frame_hw=(h, w))
"""

from __future__ import annotations

import cv2
import numpy as np

from facecam.realtime import processing
from facecam.realtime.crops import Box, Crop, crop_pixels
from facecam.realtime.reuse import crop_motion, moved_look
from facecam.realtime.roll import looked_turned, may_lean, upright_looks
from facecam.realtime.tracking import FaceTracker, Track, aimed_centre


def reused_look(track: Track, gray: np.ndarray, levels: float, limit: int) -> np.ndarray | None:
    """``track``'s last look moved onto its crop of this frame (``gray``), while that look was
    reused fewer than ``limit`` frames in a row and the crop shows it within ``levels`` (see
    reuse.moved_look); None when the model must look again."""
    if track.looked_gray is None or track.reused >= limit:
        return None
    look = (track.looked_crop, track.looked_gray, track.looked_probability)
    return moved_look(*look, track.crop, gray, levels)


def shows_the_look(
    frame: np.ndarray,
    crop: Crop,
    looked: tuple[Crop, np.ndarray],
    levels: float,
    halvings: processing.Halvings | None = None,
) -> bool:
    """Whether ``crop`` of ``frame`` shows what the model saw in ``looked`` (the crop it looked at
    and that crop's grey), still or moved, within ``levels`` (see reuse.crop_motion): a look
    there would see what the model saw and say what it said."""
    looked_crop, looked_gray = looked
    now = cv2.cvtColor(crop_pixels(frame, crop, looked_gray.shape[0], halvings), cv2.COLOR_BGR2GRAY)
    return crop_motion(looked_crop, looked_gray, crop, now, levels) is not None


def held_again_unchanged(
    proposal: Box,
    tracker: FaceTracker,
    frame: np.ndarray,
    index: int,
    levels: float,
    halvings: processing.Halvings | None = None,
) -> bool:
    """Whether ``proposal`` repeats a held one whose first look showed no face, over what that
    look saw (shows_the_look within ``levels``): then it is held again (``tracker``), unlooked at.
    A crowd's zoomed pass proposed the same blobs (lamps, chests) every 12 frames, each looked at
    to be held again."""
    held = tracker.unseen_hold_of(proposal, index)
    crop = tracker.first_crop(proposal, frame.shape[:2]) if held is not None else None
    if crop is None or not shows_the_look(frame, crop, held.looked, levels, halvings):
        return False
    tracker.hold_again(held, proposal, index)
    return True


def _looks_of(segmenter, size: int, first: bool, stream: bool):
    """The model's looks at ``size x size`` crops (uint8 BGR) as looks_at_crops takes them: a
    followed face's on Segmenter.infer_batch, a first look on the model that decides what is a
    face (Segmenter.infer_first_looks), in a photo averaged with its mirror image's
    (processing.mirror_averaged)."""

    def infer(crops: list[np.ndarray]) -> list[np.ndarray]:
        batch = np.concatenate([processing.preprocess(c, (size, size), segmenter.card) for c in crops])
        if not first:
            return list(segmenter.infer_batch(batch))
        if stream:
            return list(segmenter.infer_first_looks(batch))
        return list(processing.mirror_averaged(segmenter.infer_first_looks, batch))

    return infer


def _looks_turned_where_leaning(
    infer, crops: list[np.ndarray], tracks: list[Track], size: int, first: bool, frame_hw: tuple[int, int] | None
) -> list[np.ndarray]:
    """``infer``'s looks at ``crops`` (of ``tracks``, ``size`` a side), the leaning faces' turned
    upright (see realtime.roll): a first look at a face big enough again, turned, where it leans
    (upright_looks, which sets the track's lean); a followed one's crop turned by its lean
    (looked_turned). ``frame_hw`` None: as they are (anonymize), with nothing more to compute."""
    if first:
        looks = infer(crops)
        big = [k for k, t in enumerate(tracks) if frame_hw and may_lean(t.face)]
        if big:
            centres = [aimed_centre(tracks[k], size) for k in big]
            turned, leans = upright_looks(infer, [crops[k] for k in big], centres, [looks[k] for k in big])
            for k, look, lean in zip(big, turned, leans, strict=True):
                looks[k], tracks[k].lean = look, lean
        return looks
    leans = [t.lean if frame_hw and may_lean(t.face) else 0.0 for t in tracks]
    if not any(leans):  # every face upright: no centre to find, nothing to turn
        return infer(crops)
    centres = [aimed_centre(t, size) if lean else (0.0, 0.0) for t, lean in zip(tracks, leans, strict=True)]
    return looked_turned(infer, crops, centres, leans)


def looks_at_crops(
    segmenter,
    crops: list[np.ndarray],
    sizes: list[int],
    tracks: list[Track],
    grays: list[np.ndarray],
    stream: bool,
    reuse: tuple[float, int] | None = None,
    frame_hw: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """The ``(s, s) float32`` face probability of each track's crop (``crops[i]``, ``sizes[i]``
    model pixels a side, ``grays[i]`` its grey). ``reuse``: ``(levels, limit)`` of reused_look,
    None to look at every crop. Each track remembers the look it got (and how often it was reused).
    ``frame_hw``: the frame's size, where a face leaning far from upright may be turned (see
    roll.may_lean); None: no face is.

    Runs batch the crops of one size; first looks (a track never seen) run apart, on the model
    that decides what is a face (Segmenter.infer_first_looks), and in a photo (not ``stream``)
    each is averaged with its mirror image's (processing.mirror_averaged). A face leaning far
    from upright gets its first look again turned upright (roll.upright_looks), and its crops
    are turned by the lean it was last seen at (``Track.lean``, roll.looked_turned)."""
    probabilities: list[np.ndarray] = [np.empty(0)] * len(tracks)
    if reuse is not None:
        for i, track in enumerate(tracks):
            moved = reused_look(track, grays[i], *reuse)
            if moved is not None:
                probabilities[i] = moved
                track.reused += 1
    keys = [(s, t.frames == 0) for s, t in zip(sizes, tracks, strict=True)]
    for size, first in sorted(set(keys)):
        picked = [i for i, k in enumerate(keys) if k == (size, first) and probabilities[i].size == 0]
        if not picked:
            continue
        infer = _looks_of(segmenter, size, first, stream)
        looks = _looks_turned_where_leaning(
            infer, [crops[i] for i in picked], [tracks[i] for i in picked], size, first, frame_hw
        )
        for i, probability in zip(picked, looks, strict=True):
            probabilities[i] = probability
            track = tracks[i]
            track.looked_crop, track.looked_gray, track.looked_probability = track.crop, grays[i], probability
            track.reused = 0
    return probabilities

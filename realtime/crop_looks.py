"""The model's looks at the tracked faces' crops: one run per crop size, first looks apart, and
a face whose crop shows what the model last saw there, still or shifted, given that look again
(see realtime.reuse) instead of a new one.

    probabilities = looks_at_crops(segmenter, crops, sizes, tracks, grays, stream=True)
"""

from __future__ import annotations

import cv2
import numpy as np

from facecam.realtime import processing
from facecam.realtime.crops import Crop, crop_pixels
from facecam.realtime.reuse import crop_motion, moved_look
from facecam.realtime.roll import upright_looks
from facecam.realtime.tracking import Track, aimed_centre


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


def _first_looks_of(segmenter, size: int):
    """A photo's first looks at ``size x size`` crops, as looks_at_crops takes them (mirrored)."""

    def infer(crops: list[np.ndarray]) -> list[np.ndarray]:
        batch = np.concatenate([processing.preprocess(c, (size, size), segmenter.card) for c in crops])
        return list(processing.mirror_averaged(segmenter.infer_first_looks, batch))

    return infer


def looks_at_crops(
    segmenter,
    crops: list[np.ndarray],
    sizes: list[int],
    tracks: list[Track],
    grays: list[np.ndarray],
    stream: bool,
    reuse: tuple[float, int] | None = None,
) -> list[np.ndarray]:
    """The ``(s, s) float32`` face probability of each track's crop (``crops[i]``, ``sizes[i]``
    model pixels a side, ``grays[i]`` its grey). ``reuse``: ``(levels, limit)`` of reused_look,
    None to look at every crop. Each track remembers the look it got (and how often it was reused).

    Runs batch the crops of one size; first looks (a track never seen) run apart, on the model
    that decides what is a face (Segmenter.infer_first_looks), and in a photo (not ``stream``)
    each is averaged with its mirror image's (processing.mirror_averaged), and a face leaning
    far from upright is looked at again turned upright (roll.upright_looks)."""
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
        batch = np.concatenate([processing.preprocess(crops[i], (size, size), segmenter.card) for i in picked])
        if not first:
            looks = segmenter.infer_batch(batch)
        elif stream:
            looks = segmenter.infer_first_looks(batch)
        else:
            looks = processing.mirror_averaged(segmenter.infer_first_looks, batch)
            turned = [crops[i] for i in picked]
            centres = [aimed_centre(tracks[i], size) for i in picked]
            looks = upright_looks(_first_looks_of(segmenter, size), turned, centres, list(looks))
        for i, probability in zip(picked, looks, strict=True):
            probabilities[i] = probability
            track = tracks[i]
            track.looked_crop, track.looked_gray, track.looked_probability = track.crop, grays[i], probability
            track.reused = 0
    return probabilities

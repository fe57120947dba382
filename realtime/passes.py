"""How much each pass of the face finder sees, and how often: the zoom and period of the
full-frame passes, the model pixels a face's crop gets, the mask's grid, and the settings each
compose mode asks of the finder (see :mod:`facecam.realtime.faces`)."""

from __future__ import annotations

import numpy as np

from facecam.realtime import processing
from facecam.realtime.crops import Box, inside, iou, touches_side_or_top
from facecam.realtime.reuse import ANONYMIZE_STILL_LEVELS, ANONYMIZE_STILL_REUSE, STILL_LEVELS, STILL_REUSE
from facecam.realtime.tracking import SAME_FACE_IOU

#: the full-frame pass sees the frame this many times larger than its own pixels (small faces
#: get model pixels), with the long side at most FINDER_MAX_SIDE (cost) and at least the model's
FINDER_ZOOM = 2.0
FINDER_MAX_SIDE = 1280
#: the full-frame pass at the model's size every this many frames, the zoomed one for small
#: faces every FINE_EVERY (5 s at 30 fps), ANONYMIZE_FINE_EVERY in anonymize; both at the start
#: and on a scene cut. Outside anonymize a small face found late is only blurred (or tinted) a
#: little longer, and the zoomed pass was the largest share of the CPU a 720p blur frame costs
#: that is not the face itself: with a look every 3 s, 0.5-0.8 ms of 7.5-8 (d3 at 720p, changed
#: tiles only); every 5 s, 0.3 ms less (facecam-bench, three alternating runs)
FIND_EVERY = 6
FINE_EVERY = 150
ANONYMIZE_FINE_EVERY = 12
#: a crop goes to the model at this many model pixels per frame pixel (a small face is enlarged
#: a little, not to the model's full size: the cost then grows with the face), at least
#: MIN_CROP_INPUT, at most the model's own size, a multiple of 32
CROP_DETAIL = 1.5
MIN_CROP_INPUT = 96
#: in anonymize a face already followed is segmented at this many model pixels per frame pixel
#: (its first look keeps CROP_DETAIL): the pixelation shows no more. Measured on the eight clips
#: against CenterFace's boxes of every frame (scripts/anonymize_leaks.py), 1.5 -> 1.0: faces
#: covered group-1 0.9979 -> 0.9989, group-5 0.9916 -> 0.9924, group-4 0.9610 -> 0.9688, group-6
#: 0.9963 -> 1.0, group-3, stock-group-1, d3 and d13 the same (1.0, 0.9987, 1.0, 1.0); at 1.25
#: group-1 0.9961 and group-5 0.9909. A crop of a 60 px face: 160 model px instead of 224. (The
#: first look and the follows then differ in size: the first look is not reused and the face's
#: smoothing starts again at its second look, as at a LARGE_CROP_INPUT change.)
ANONYMIZE_FOLLOW_DETAIL = 1.0
#: in a stream, a crop the model would see shrunk LARGE_CROP_SHRINK times or more per side (a
#: webcam face at 720p: a 1,250 px crop) is segmented at LARGE_CROP_INPUT model pixels, not the
#: model's own 224: half the inference time, and the edge-aware upsampling puts the edge back at
#: full resolution. Measured on d3.mp4 and talking_head.mp4 with every crop at 160: flicker
#: 0.0093 -> 0.0084 and 0.0183 -> 0.0188, holes unchanged. Photos keep the full size (on
#: lfw-parts/test, 250 px photos, 160 costs 0.006 IoU).
LARGE_CROP_SHRINK = 4
LARGE_CROP_INPUT = 160
#: a track's crop that was segmented at LARGE_CROP_INPUT stays there until it shrinks this much
#: below the threshold: a face whose crop hovers at it would otherwise flip between two sizes,
#: and each flip restarts its smoothing and its reuse of the last look
LARGE_CROP_HYSTERESIS = 0.15
#: the merged mask's grid: the frame with its long side at most this (finer than the model's
#: own 224, so a small face keeps a shape); the edge-aware upsampling takes it to full size
GRID_SIDE = 256
#: the verifier's face probability a proposal needs to be followed; lower in anonymize mode
VERIFY_THRESHOLD = 0.5
ANONYMIZE_VERIFY_THRESHOLD = 0.2
#: a crop cut around a blob of several faces shows them small and in a crowd, where the model is
#: less sure of each: the faces it shows are proposed from this probability (the verifier then
#: judges them, and each gets a crop of its own where the model sees it well). Lower in anonymize
#: and in photos: in a video stream a weak blob (a hand, a neck) followed for a frame flickers
#: (d3.mp4 full-resolution mask flicker 0.0110 at 0.25, 0.0106 at 0.5)
SPLIT_THRESHOLD = 0.5
ANONYMIZE_SPLIT_THRESHOLD = PHOTO_SPLIT_THRESHOLD = 0.25


def grid_shape(frame_hw: tuple[int, int], grid_side: int = GRID_SIDE) -> tuple[tuple[int, int], float]:
    """``((h, w), scale)`` of the mask grid for a frame of ``(H, W)``: scale = grid px per frame px."""
    height, width = frame_hw
    scale = min(1.0, grid_side / max(height, width))
    return (max(1, round(height * scale)), max(1, round(width * scale))), scale


def finder_size(frame_hw: tuple[int, int], model_side: int, zoom: float = FINDER_ZOOM) -> tuple[int, int]:
    """``(h, w)`` of the zoomed full-frame pass: the frame ``zoom`` times larger, its long side
    within ``model_side .. FINDER_MAX_SIDE``, each side a multiple of 32."""
    long_side = min(FINDER_MAX_SIDE, max(model_side, zoom * max(frame_hw)))
    return processing.scaled_size(frame_hw, long_side)


def finder_settings(mode: str) -> dict:
    """FaceFinder settings for a compose mode. In anonymize a missed face is a privacy failure
    and a patch of skin pixelated costs little: a small face coming into view is looked for
    every 12 frames, not FINE_EVERY, in every tile, changed or not, and the verifier keeps doubtful
    proposals; a face's last look is reused longer, as the pixelation's margin hides a mask a
    frame behind, and a followed face is segmented at fewer model pixels; and no face is turned
    upright to be looked at (realtime.roll): in the crowd clips a face wrongly taken to lean
    was lost for a frame or two (`group1` uncovered face-frames 2 -> 4, `ho_group-7` 9 -> 11,
    phase 0 of scripts/anonymize_leaks.py), and the grown ellipses cover a leaning face anyway;
    and a followed face the verifier doubts stays followed (tracking.rechecked).
    Elsewhere a wrong face shows (a blurred arm, a sharp patch of carpet) and the CPU is spared."""
    if mode == "anonymize":
        return {
            "fine_every": ANONYMIZE_FINE_EVERY,
            "verify_threshold": ANONYMIZE_VERIFY_THRESHOLD,
            "skip_unchanged_tiles": False,
            "split_threshold": ANONYMIZE_SPLIT_THRESHOLD,
            "find_cores": True,
            "still_levels": ANONYMIZE_STILL_LEVELS,
            "still_reuse": ANONYMIZE_STILL_REUSE,
            "watch_edges": True,
            "follow_detail": ANONYMIZE_FOLLOW_DETAIL,
            "turn_leaning": False,
            "confirm_tracks": False,
        }
    return {
        "fine_every": FINE_EVERY,
        "verify_threshold": VERIFY_THRESHOLD,
        "skip_unchanged_tiles": True,
        "split_threshold": SPLIT_THRESHOLD,
        "find_cores": False,
        "still_levels": STILL_LEVELS,
        "still_reuse": STILL_REUSE,
        "watch_edges": False,
        "follow_detail": CROP_DETAIL,
        "turn_leaning": True,
        "confirm_tracks": True,
    }


def crop_input_side(
    crop_side: float,
    model_side: int,
    stream: bool = False,
    was_large: bool = False,
    fixed: bool = False,
    detail: float = CROP_DETAIL,
) -> int:
    """The side, in model pixels, a crop of ``crop_side`` frame pixels is segmented at:
    ``detail`` model pixels per frame pixel, a multiple of 32, within MIN_CROP_INPUT and the
    model's own side; in a ``stream``, LARGE_CROP_INPUT for a crop of LARGE_CROP_SHRINK times
    that or more (``was_large``: the track's last crop was one; see LARGE_CROP_HYSTERESIS).
    ``fixed``: the model's own side for every crop, where each new input shape costs a session
    (CUDA, see shape_sessions) and compute is to spare; the figures measured for the sizes above
    (flicker, IoU) were measured on the CPU, not there."""
    if fixed:
        return model_side
    if stream and is_large_crop(crop_side, was_large):
        model_side = min(model_side, LARGE_CROP_INPUT)
    side = int(np.ceil(crop_side * detail / 32)) * 32
    return max(min(MIN_CROP_INPUT, model_side), min(model_side, side))


def may_hide_a_face(
    proposal: Box, crop_side: float, input_side: int, frame_hw: tuple[int, int], stream: bool = True
) -> bool:
    """Whether a proposal whose first look (its crop of ``crop_side`` frame px segmented at
    ``input_side`` model px) found no face at its centre may still hide one, and is held
    (tracking.FaceTracker.missed).

    Yes when the model looked at it closely (CROP_DETAIL model pixels per frame pixel or more):
    the crop model misses some faces the finder and the verifier take for faces (in a crowd clip
    made for a held-out check, an 18 px face in glasses that no first look found was covered by
    this hold alone; it showed for 84 frames without it). When the model saw it shrunk (a blob
    of a ceiling, a suit, a row of bodies: the crop shows anything in it small), only at the
    frame's side or top edge, where a face cut in half by the edge is what the model misses
    (faces panning in); elsewhere the faces of such a blob are proposed on their own, by the
    zoomed pass, and looked at closely. Not holding those took the share of the crowd clip's
    frame covered where no face is from 0.45 to 0.34 (scripts/anonymize_leaks.py). A photo
    (not ``stream``) keeps every such hold: its faces come in at no edge, and it was not measured."""
    shrunk = input_side < CROP_DETAIL * crop_side
    return not stream or not shrunk or touches_side_or_top(proposal, frame_hw)


def is_large_crop(crop_side: float, was_large: bool = False) -> bool:
    """Whether a stream's crop of ``crop_side`` frame pixels is segmented at LARGE_CROP_INPUT."""
    threshold = LARGE_CROP_SHRINK * LARGE_CROP_INPUT * ((1 - LARGE_CROP_HYSTERESIS) if was_large else 1)
    return crop_side >= threshold


def zoomed_additions(coarse: list[Box], zoomed: list[Box], small: float) -> list[Box]:
    """The blobs of the zoomed full-frame pass that are faces the coarse pass did not find.

    A small one (under ``small`` frame pixels) that overlaps no coarse face. A bigger one only
    where no coarse face holds its centre: the zoomed pass breaks a big face into pieces (a
    cheek, a forehead) that lie inside the coarse pass's box of it, but at the model's own size a
    face of a crowded photo may not be painted at all (a man at the side of a family photo, 128
    px in 435) or run into its neighbour, and only the zoomed pass shows it (its blob often runs
    into the chest below: a crop aimed at its head, see crops.head_of, finds the face)."""
    extra = []
    for box in zoomed:
        if any(iou(box, c) > SAME_FACE_IOU for c in coarse):
            continue
        if box.size < small or not any(inside(box.center, c) for c in coarse):
            extra.append(box)
    return extra

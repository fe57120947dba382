"""Faces turned in the picture's plane: a look at a leaning face taken again turned upright, and
a followed face's crop turned by its lean.

    looks, leans = upright_looks(infer, crops, centres, looks)   # first looks (crop_looks)
    looks = looked_turned(infer, crops, centres, leans)           # followed faces' looks
    lean = followed_lean(lean, blob, probability)                 # each followed face, each look

Why: the model was trained on faces turned up to 25 degrees (training/augment.py), and beyond
that it paints less of a face the more it is turned: on `lfw-parts/val` turned in its plane
(scripts/tilted_faces.py) mean IoU 0.901 upright, 0.862 at 45 degrees, 0.784 at 60, 0.641 at 90,
where 19% of the faces were mostly missed (a head on a shoulder, a child on the floor, someone
asleep). But the upright look at a tilted face mostly paints it, tilted: the long axis of the
face it paints says how far it is turned. Where that is ROLL_LOOK or more, the crop is turned
upright about the face and looked at again, and the surer look is kept (see look_sureness).
In a stream the same holds for a face's first look, and a followed face's crop is turned
by the lean its face was last seen at (followed_lean): a head that tilts to a shoulder is
followed turned, and an upright one as before (its lean never reaches ROLL_LOOK).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from facecam.face import FACE_THRESHOLD
from facecam.realtime.crops import keep_blobs_touching, seed_disc

#: a face whose painted blob leans this many degrees or more from upright is looked at again,
#: turned upright. Chosen on `lfw-parts/val` (500 photos, with SURE_LOOK): upright photos the
#: same (0.9010), faces turned 45 degrees 0.862 -> 0.894; from 40 degrees, 0.890
ROLL_LOOK = 30.0
#: only a look this sure of its face (the mean probability over the face it paints) is trusted
#: to say which way the face leans: a doubtful blob (a hand, a face cut by the photo's edge)
#: leans any way, and its turned look painted more of what it was (on `lfw-parts/val` upright,
#: 12 photos changed without this, 10 for the worse, IoU 0.9010 -> 0.9001; 0.9010 with it)
SURE_LOOK = 0.8
#: a face leaning this far or more may be either way up (the long axis alone cannot tell a head
#: on the left shoulder from one on the right): both turns are looked at, the surer kept
EITHER_WAY = 60.0
#: a followed face's crop is turned anew once its face leans this many degrees from where it was
#: turned (a steadier input than every degree of wobble), and upright again once it leans less
#: than ROLL_LOOK - ROLL_HYSTERESIS (a face at the threshold would flip between two crops)
ROLL_STEP = 10.0
ROLL_HYSTERESIS = 10.0
#: only a face this many frame pixels long or more is turned: a small one's blob is a few pixels
#: of face and neck or of two heads, and leans any way. In the held-out Solvay crowd clip (faces
#: of 20-30 px) `mask` mode left face-frames uncovered 1,331 times without any turn, 1,517 with
#: every face turnable, 1,392 from 40 px, 1,332 from 64 (phase 0 of scripts/anonymize_leaks.py
#: in mask mode)
MIN_LEAN_FACE = 64.0
#: a face whose box comes this near the frame's edge is cut by it (see next_lean)
EDGE_PX = 2.0
#: the face blob needs this share of the crop's pixels for its axis to mean anything
MIN_BLOB_SHARE = 0.01


def may_lean(face) -> bool:
    """Whether a face of box ``face`` (frame pixels) is big enough to be turned (MIN_LEAN_FACE)."""
    return face.size >= MIN_LEAN_FACE


def cut_by_edge(face, frame_hw: tuple[int, int]) -> bool:
    """Whether the box ``face`` (frame pixels) reaches the frame's edge (within EDGE_PX)."""
    height, width = frame_hw
    return face.x0 <= EDGE_PX or face.y0 <= EDGE_PX or face.x1 >= width - EDGE_PX or face.y1 >= height - EDGE_PX


def next_lean(lean: float, blob: np.ndarray, probability: np.ndarray, face, frame_hw: tuple[int, int]) -> float:
    """The lean a followed face of box ``face`` is turned by from the next frame on (see
    followed_lean): none for a face under MIN_LEAN_FACE, and an upright one cut by the frame's
    edge stays upright. Such a face is painted as a band along the edge, whose long axis lies
    along it: a face at the bottom of a crowd clip, half out of the frame, was taken to lean 87
    degrees, turned, and lost (`group4` in `mask` mode, phase 0 of scripts/anonymize_leaks.py:
    uncovered face-frames 62 without turns, 100 with, 62 with this rule). A face turned at its
    first look (where the turned look was surer) stays followed turned at the edge."""
    if not may_lean(face) or (not lean and cut_by_edge(face, frame_hw)):
        return 0.0
    return followed_lean(lean, blob, probability)


def face_blob(probability: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """``(s, s) bool``: the face a crop's ``(s, s)`` probability paints at ``centre`` (crop px)."""
    size = probability.shape[0]
    return keep_blobs_touching(probability, seed_disc(size, centre), FACE_THRESHOLD) > FACE_THRESHOLD


def face_roll(blob: np.ndarray) -> float | None:
    """Degrees the face painted as ``blob`` (``(s, s) bool``) leans from upright, counter-clockwise
    as seen (-90..90]: the angle of the blob's long axis from the vertical (a face is taller
    than wide). None for a blob too small to say."""
    moments = cv2.moments(blob.astype(np.uint8), True)
    if moments["m00"] < MIN_BLOB_SHARE * blob.size:
        return None
    mu20, mu11, mu02 = (moments[k] / moments["m00"] for k in ("mu20", "mu11", "mu02"))
    axis = 0.5 * np.degrees(np.arctan2(2 * mu11, mu20 - mu02))  # from the x axis, image y down
    roll = (-axis - 90.0) % 180.0
    return roll - 180.0 if roll > 90.0 else roll


def look_sureness(probability: np.ndarray, centre: tuple[float, float]) -> float:
    """The mean probability over the face a look paints at ``centre``: 0 where it paints none.
    A model trained on upright faces is surer of an upright one (a face turned 60 degrees: 0.84-0.96
    upright, 0.02-0.09 more once turned upright, on `lfw-parts/val`)."""
    blob = face_blob(probability, centre)
    return float(probability[blob].mean()) if blob.any() else 0.0


def turned(image: np.ndarray, degrees: float, centre: tuple[float, float], fill: bool = False) -> np.ndarray:
    """``image`` (``(s, s)`` or ``(s, s, 3)``) turned ``degrees`` counter-clockwise about ``centre``
    (pixel centres), its size kept; the corners it brings in mirror the crop (``fill``: 0)."""
    size = image.shape[1], image.shape[0]
    matrix = cv2.getRotationMatrix2D((centre[0] - 0.5, centre[1] - 0.5), degrees, 1.0)
    border = cv2.BORDER_CONSTANT if fill else cv2.BORDER_REFLECT
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=border)


def upright_turns(roll: float) -> list[float]:
    """The turns (degrees, counter-clockwise) that may bring a face leaning ``roll`` upright."""
    if abs(roll) < EITHER_WAY:
        return [-roll]
    return [-roll, -roll + 180.0 * np.sign(roll)]


def upright_looks(
    infer: Callable[[list[np.ndarray]], list[np.ndarray]],
    crops: list[np.ndarray],
    centres: list[tuple[float, float]],
    looks: list[np.ndarray],
) -> tuple[list[np.ndarray], list[float]]:
    """``looks`` (each crop's ``(s, s)`` face probability, looked at upright) with each sure look
    at a face leaning ROLL_LOOK or more replaced by the surest of it and its looks turned upright
    (``infer``: crops -> their looks, one run), turned back; and the lean each kept look was
    taken at (0 for an upright one: the turn undone). ``centres``: where each crop's face is."""
    sureness = [look_sureness(look, centre) for look, centre in zip(looks, centres, strict=True)]
    leans = [0.0] * len(looks)
    tried: list[tuple[int, float]] = []
    for i, (look, centre) in enumerate(zip(looks, centres, strict=True)):
        if sureness[i] < SURE_LOOK:
            continue
        roll = face_roll(face_blob(look, centre))
        if roll is not None and abs(roll) >= ROLL_LOOK:
            tried += [(i, turn) for turn in upright_turns(roll)]
    if not tried:
        return looks, leans
    turned_looks = infer([turned(crops[i], turn, centres[i]) for i, turn in tried])
    best = list(looks)
    for (i, turn), look in zip(tried, turned_looks, strict=True):
        back = turned(look, -turn, centres[i], fill=True)
        sure = look_sureness(back, centres[i])
        if sure > sureness[i]:
            best[i], sureness[i], leans[i] = back, sure, -turn
    return best, leans


def looked_turned(
    infer: Callable[[list[np.ndarray]], list[np.ndarray]],
    crops: list[np.ndarray],
    centres: list[tuple[float, float]],
    leans: list[float],
) -> list[np.ndarray]:
    """The looks at ``crops`` (one run of ``infer``), each crop turned upright first by the lean
    its face was last seen at (``leans``, degrees; 0: as it is) and its look turned back."""
    inputs = [turned(c, -lean, centre) if lean else c for c, centre, lean in zip(crops, centres, leans, strict=True)]
    looks = infer(inputs)
    return [
        turned(look, lean, centre, fill=True) if lean else look
        for look, centre, lean in zip(looks, centres, leans, strict=True)
    ]


def followed_lean(lean: float, blob: np.ndarray, probability: np.ndarray) -> float:
    """The lean a followed face's next crop is turned upright by, from its look now
    (``probability``, turned back, and the ``blob`` of its face in it) and the lean its crop was
    turned by (``lean``): the face's lean once it moved ROLL_STEP or more (a head turning to a
    shoulder), and back to upright (0) once under ROLL_LOOK - ROLL_HYSTERESIS. A doubtful look
    (under SURE_LOOK) changes nothing. The change is measured against ``lean`` the short way
    round, so a face followed past 90 degrees (a person lying down, then rolling) stays followed."""
    if not blob.any() or float(probability[blob].mean()) < SURE_LOOK:
        return lean
    now = face_roll(blob)
    if now is None:
        return lean
    change = (now - lean + 90.0) % 180.0 - 90.0
    if abs(change) < ROLL_STEP:
        return lean
    new = (lean + change + 180.0) % 360.0 - 180.0
    floor = ROLL_LOOK - ROLL_HYSTERESIS if lean else ROLL_LOOK
    return new if abs(new) >= floor else 0.0

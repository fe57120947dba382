"""Faces turned in the picture's plane: which way a painted face leans, and a photo's first look
at a leaning face looked at again turned upright (realtime.roll).

A stand-in model paints every skin pixel, surer of a face the more upright it stands: the
bookkeeping (what is turned, about which point, what is kept) is then exact. The shipped model
on real turned photos is the slow test at the end.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA
from test_faces import SKIN_BGR, ColourKeyedSegmenter

from facecam.realtime.crops import Box
from facecam.realtime.faces import FaceFinder
from facecam.realtime.passes import finder_settings
from facecam.realtime.roll import (
    EITHER_WAY,
    MIN_LEAN_FACE,
    ROLL_HYSTERESIS,
    ROLL_LOOK,
    ROLL_STEP,
    cut_by_edge,
    face_roll,
    followed_lean,
    looked_turned,
    may_lean,
    next_lean,
    upright_looks,
    upright_turns,
)

SIZE = 96
SKIN = 200
LFW = SHARED_DATA / "lfw-parts"
#: the slow test's floor: its 40 photos turned 60 degrees score 0.873 with the turned look, 0.778
#: without it (roll.ROLL_LOOK set past 90)
FLOOR_60 = 0.84


def face_crop(lean: float, centre: tuple[float, float] = (48.0, 48.0)) -> np.ndarray:
    """A ``(SIZE, SIZE, 3)`` grey crop with a skin ellipse (22 x 34 px half-axes, as a face is
    taller than wide) at ``centre``, its top leaning ``lean`` degrees counter-clockwise (drawn by
    OpenCV, whose ellipse angle turns clockwise on screen: independent of roll.turned)."""
    crop = np.full((SIZE, SIZE, 3), 60, np.uint8)
    cx, cy = round(centre[0] - 0.5), round(centre[1] - 0.5)
    cv2.ellipse(crop, (cx, cy), (22, 34), -lean, 0, 360, (SKIN, SKIN, SKIN), -1)
    return crop


def skin(crop: np.ndarray) -> np.ndarray:
    return crop[..., 0] > (SKIN + 60) / 2


def largest_blob(mask: np.ndarray) -> np.ndarray:
    """The largest blob of ``mask``: the face, without the slivers of it that a turned crop's
    mirrored corners bring in."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if count < 2:
        return mask
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def lean_of_skin(mask: np.ndarray) -> float:
    """The skin's lean from upright, from its coordinates' covariance (the stand-in's own way)."""
    ys, xs = np.nonzero(mask)
    cov = np.cov(np.stack([xs, ys]).astype(float))
    vals, vecs = np.linalg.eigh(cov)
    x, y = vecs[:, np.argmax(vals)]  # the long axis
    return float(np.degrees(np.arctan2(abs(x), abs(y))))


def centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()) + 0.5, float(ys.mean()) + 0.5  # pixel centres, as crop coordinates


class LeanAwareModel:
    """Paints every skin pixel, at 0.85 + 0.1 cos^2(lean): sure of a leaning face, surer of an
    upright one, as the real model is (0.84-0.96 at 60 degrees, a little more turned upright).
    Remembers where the face of each crop it saw was and how it leaned."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[float, float], float]] = []

    @property
    def crops_seen(self) -> int:
        return len(self.seen)

    def __call__(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        looks = []
        for crop in crops:
            mask = skin(crop)
            face = largest_blob(mask)
            lean = lean_of_skin(face)
            self.seen.append((centroid(face), lean))
            sure = 0.85 + 0.1 * np.cos(np.radians(lean)) ** 2
            looks.append(np.where(mask, sure, 0.0).astype(np.float32))
        return looks


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.mark.parametrize("lean", [0, 20, 45, -45, 70, -80])
def test_the_lean_of_a_painted_face(lean):
    blob = skin(face_crop(lean))
    assert face_roll(blob) == pytest.approx(lean, abs=2)


def test_a_blob_too_small_has_no_lean():
    blob = np.zeros((SIZE, SIZE), bool)
    blob[40:43, 40:43] = True
    assert face_roll(blob) is None


def test_a_face_leaning_far_is_tried_either_way_up():
    assert upright_turns(40) == [-40]
    assert upright_turns(EITHER_WAY + 10) == [-(EITHER_WAY + 10), 180 - (EITHER_WAY + 10)]
    assert upright_turns(-80) == [80, -100]


@pytest.mark.parametrize("centre", [(48.0, 48.0), (40.0, 55.0)])
def test_a_leaning_face_is_looked_at_again_upright_and_the_surer_look_kept_in_place(centre):
    crop = face_crop(50, centre)
    model = LeanAwareModel()
    first = model([crop])
    model.seen.clear()
    [look], [lean] = upright_looks(model, [crop], [centre], first)
    assert model.crops_seen == 1  # one turn: 50 degrees is no "either way"
    [(where, upright)] = model.seen  # the model saw the face upright, where it is in the crop
    assert upright < 3 and np.allclose(where, centre, atol=1.5)
    assert lean == pytest.approx(50, abs=3)  # the lean the kept look was taken at
    face = skin(crop)
    assert np.median(look[face]) > np.median(first[0][face]) + 0.03  # the upright look, surer, was kept
    assert (
        iou(look >= 0.5, face) > 0.85
    )  # turned back onto the face where it is (two bilinear turns: an edge a pixel soft)


def test_an_upright_face_and_a_doubtful_look_are_not_looked_at_again():
    model = LeanAwareModel()
    upright = face_crop(ROLL_LOOK / 2)
    leaning = face_crop(50)
    doubtful = [np.where(skin(leaning), 0.6, 0.0).astype(np.float32)]  # a hand, say: unsure
    centre = [(48.0, 48.0)]
    upright_looks(model, [upright], centre, model([upright]))
    assert model.crops_seen == 1  # the first look alone
    model.seen.clear()
    assert upright_looks(model, [leaning], centre, doubtful) == (doubtful, [0.0])
    assert model.crops_seen == 0


def test_a_turned_look_less_sure_than_the_upright_one_is_not_kept():
    crop = face_crop(50)
    centre = [(48.0, 48.0)]
    sure = [np.where(skin(crop), 0.99, 0.0).astype(np.float32)]  # surer than any turned look
    assert upright_looks(LeanAwareModel(), [crop], centre, sure) == (sure, [0.0])


def test_a_followed_face_is_looked_at_turned_by_its_lean_and_its_look_comes_back_in_place():
    centre = (40.0, 55.0)  # off the crop's middle: turned about the face, not the crop
    crop = face_crop(50, centre)
    model = LeanAwareModel()
    [as_is] = looked_turned(model, [crop], [centre], [0.0])
    [upright] = looked_turned(model, [crop], [centre], [50.0])
    (_, leaning), (where, lean_seen) = model.seen
    assert leaning == pytest.approx(50, abs=2) and lean_seen < 3 and np.allclose(where, centre, atol=1.5)
    face = skin(crop)
    assert np.median(upright[face]) > np.median(as_is[face]) + 0.03  # the model saw it upright
    assert iou(upright >= 0.5, face) > 0.85


def look_of(lean: float, sure: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    blob = skin(face_crop(lean))
    return blob, np.where(blob, sure, 0.0).astype(np.float32)


def test_the_lean_a_followed_face_is_turned_by():
    # an upright face stays upright; one that leans ROLL_LOOK or more is followed turned
    assert followed_lean(0.0, *look_of(ROLL_LOOK / 2)) == 0.0
    assert followed_lean(0.0, *look_of(45)) == pytest.approx(45, abs=2)
    # a wobble under ROLL_STEP keeps the crop's turn; a larger move follows the face
    assert followed_lean(45.0, *look_of(45 + ROLL_STEP / 2)) == 45.0
    assert followed_lean(45.0, *look_of(70)) == pytest.approx(70, abs=2)
    # back upright only under ROLL_LOOK - ROLL_HYSTERESIS: a face at the threshold does not flip
    assert followed_lean(45.0, *look_of(ROLL_LOOK - ROLL_HYSTERESIS / 2)) != 0.0
    assert followed_lean(45.0, *look_of(5)) == 0.0
    # past 90 degrees the short way round: a face lying down (85) that rolls on to 100 (-80)
    assert followed_lean(85.0, *look_of(-80)) == pytest.approx(100, abs=2)
    # a doubtful look changes nothing
    assert followed_lean(0.0, *look_of(45, sure=0.6)) == 0.0
    assert followed_lean(45.0, *look_of(5, sure=0.6)) == 45.0


def test_small_faces_are_never_turned_and_a_face_at_the_edge_does_not_start_leaning():
    frame_hw = (360, 640)
    inside, at_edge, small = Box(200, 100, 300, 220), Box(200, 250, 300, 360), Box(200, 100, 240, 150)
    leaning = look_of(45)
    assert next_lean(0.0, *leaning, inside, frame_hw) == pytest.approx(45, abs=2)
    assert next_lean(0.0, *leaning, small, frame_hw) == 0.0  # under MIN_LEAN_FACE
    assert next_lean(30.0, *leaning, small, frame_hw) == 0.0  # shrank: upright again
    assert next_lean(0.0, *leaning, at_edge, frame_hw) == 0.0  # a band along the edge leans any way
    assert next_lean(40.0, *leaning, at_edge, frame_hw) == 40.0  # turned already: followed (45 is within ROLL_STEP)
    assert may_lean(Box(0, 0, MIN_LEAN_FACE, 10)) and not may_lean(Box(0, 0, MIN_LEAN_FACE - 1, 10))
    assert cut_by_edge(at_edge, frame_hw) and not cut_by_edge(inside, frame_hw)


class LeanRecordingSegmenter(ColourKeyedSegmenter):
    """The colour-keyed stand-in (skin is face), noting how far the face leans in each crop it
    segments after the first full-frame passes."""

    def __init__(self) -> None:
        super().__init__()
        self.crop_leans: list[float] = []

    def infer_batch(self, tensor: np.ndarray) -> np.ndarray:
        looks = super().infer_batch(tensor)
        if tensor.shape[2] == tensor.shape[3]:  # a face's crop (the full-frame passes are not square)
            self.crop_leans += [lean_of_skin(largest_blob(look > 0.5)) for look in looks]
        return looks


def leaning_scene(shift: int = 0) -> np.ndarray:
    """A grey 360x640 frame with one skin ellipse 100 px tall, leaning 50 degrees."""
    frame = np.full((360, 640, 3), 90, np.uint8)
    cv2.ellipse(frame, (300 + shift, 180), (40, 50), -50, 0, 360, SKIN_BGR, -1)
    return frame


def test_a_stream_follows_a_leaning_face_turned_but_never_in_anonymize():
    segmenter = LeanRecordingSegmenter()
    finder = FaceFinder(segmenter, smoothing=0, find_every=100, reuse_still=False, **finder_settings("blur"))
    for index in range(4):
        finder.process(leaning_scene(index), index)
    [track] = finder.tracker.tracks
    assert track.lean == pytest.approx(50, abs=4)  # sure of its face (1.0), which leans 50
    assert min(segmenter.crop_leans[-2:]) < 5  # the last crops were segmented upright
    finder.follow_mode("anonymize")
    assert track.lean == 0.0
    segmenter.crop_leans.clear()
    for index in range(4, 8):
        finder.process(leaning_scene(index), index)
    assert segmenter.crop_leans and min(segmenter.crop_leans) > 40  # every crop as it is, leaning


def test_an_anonymize_stream_never_turns_a_crop():
    segmenter = LeanRecordingSegmenter()
    finder = FaceFinder(segmenter, smoothing=0, find_every=100, reuse_still=False, **finder_settings("anonymize"))
    for index in range(4):
        finder.process(leaning_scene(index), index)
    assert all(t.lean == 0.0 for t in finder.tracker.tracks)
    assert segmenter.crop_leans and min(segmenter.crop_leans) > 40


@pytest.mark.slow
@pytest.mark.skipif(not (LFW / "val.txt").is_file(), reason="../shared/data/lfw-parts is not here")
def test_the_shipped_model_paints_faces_turned_60_degrees(capsys):
    """40 `lfw-parts/val` photos turned 60 degrees through the photo path (scripts/tilted_faces.py)."""
    from facecam.scripts.tilted_faces import main

    assert main([str(LFW), "val", "--angles", "60", "--photos", "40"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mean_iou"] >= FLOOR_60

"""Proposals in a crowd: a blob that holds more than a face (a bare chest under it, a lamp
above it, a neighbour beside it) still leads to the face.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_faces import SKIN_BGR, ColourKeyedSegmenter

from facecam.realtime.crops import Box, Crop, below_heads, face_blob_boxes, faces_in_crop, head_of
from facecam.realtime.faces import FaceFinder
from facecam.realtime.passes import zoomed_additions
from facecam.realtime.tracking import FaceTracker


def test_a_tall_box_is_aimed_at_its_head_and_a_face_box_is_left_as_it_is():
    face = Box(100, 100, 140, 160)  # a face and its neck: 1.5 times as tall as wide
    assert head_of(face) == face
    body = Box(100, 100, 140, 300)  # the same face with the chest under it
    assert head_of(body) == Box(100, 100, 140, 152)
    crop = Crop.around(body)
    assert 100 <= crop.cy <= 160 and crop.side < 2.2 * 100  # on the head, not the chest


def test_a_wide_proposal_is_aimed_at_its_head_sooner_than_a_small_one_or_a_tracked_face():
    # 1.5 times as tall as wide: a small face and its neck stay whole; a proposal of 60 px with a
    # chest or a child below it is aimed at its head, from 1.4 times its width on
    small, wide = Box(100, 100, 140, 160), Box(100, 100, 160, 190)
    assert head_of(small, proposal=True) == small
    assert head_of(wide, proposal=True) == Box(100, 100, 160, 100 + 1.3 * 60)
    assert head_of(Box(100, 100, 148, 168), proposal=True) == Box(100, 100, 148, 100 + 1.3 * 48)  # 48 wide, 1.42
    assert head_of(Box(100, 100, 160, 184), proposal=True) == Box(100, 100, 160, 184)  # exactly 1.4
    # a tracked face (its mask and neck) keeps the old rule: its crop would jump at the threshold
    assert head_of(wide) == wide and Crop.around(wide) != Crop.around(wide, proposal=True)


def test_a_new_track_s_first_crop_is_aimed_at_the_head_of_a_wide_proposal():
    tracker = FaceTracker(memory_frames=5)
    (track,) = tracker.propose([Box(100, 100, 160, 190)], (360, 640))
    assert track.crop.cy == pytest.approx(100 + 1.3 * 60 / 2)


def test_a_face_run_into_a_big_doubtful_blob_is_proposed_by_its_sure_core():
    probability = np.zeros((200, 300), np.float32)
    probability[20:120, 20:280] = 0.6  # lamps, painted as doubtful face
    cv2.circle(probability, (150, 100), 15, 0.97, -1)  # a face below them, sure, touching them
    cv2.circle(probability, (60, 170), 12, 0.95, -1)  # a face on its own: its core is itself
    boxes = face_blob_boxes(probability, (1.0, 1.0), 0.5, 12, cores=True)
    sides = sorted(round(b.size) for b in boxes)
    assert sides == [25, 31, 260]  # the lone face, the face's core, the big blob (dropped later as too big)
    assert len(face_blob_boxes(probability, (1.0, 1.0), 0.5, 12)) == 2  # outside anonymize: no cores


def test_the_faces_a_crop_shows_come_back_in_frame_pixels():
    probability = np.zeros((100, 100), np.float32)
    cv2.circle(probability, (15, 20), 6, 0.35, -1)  # a face seen small and unsure
    crop = Crop(500.0, 300.0, 200.0)  # 2 frame pixels per crop pixel
    (face,) = faces_in_crop(probability, crop, 0.25, 12)
    cx, cy = face.center
    assert abs(cx - (400 + 15.5 * 2)) <= 3 and abs(cy - (200 + 20.5 * 2)) <= 3
    assert faces_in_crop(probability, crop, 0.5, 12) == []  # a stream's threshold: too unsure


class MergingSegmenter(ColourKeyedSegmenter):
    """The colour-keyed model, but in the full-frame passes (the frame's shape; crops are
    square) the gap between two heads side by side is painted too (a horizontal closing): one
    blob for two faces, no wider than the two."""

    def infer_batch(self, tensor: np.ndarray) -> np.ndarray:
        probability = super().infer_batch(tensor)
        height, width = tensor.shape[2:]
        if height != width:
            bridge = np.ones((1, max(3, width // 5)), np.uint8)
            probability = np.stack([cv2.morphologyEx(p, cv2.MORPH_CLOSE, bridge) for p in probability])
        return probability


def test_two_heads_merged_into_one_blob_come_apart_as_two_faces():
    frame = np.full((360, 640, 3), 90, np.uint8)
    cv2.circle(frame, (260, 180), 14, SKIN_BGR, -1)
    cv2.circle(frame, (380, 180), 14, SKIN_BGR, -1)  # two heads the full-frame pass merges
    finder = FaceFinder(MergingSegmenter(), smoothing=0, find_every=100)
    proposals = finder.find(frame)
    assert len(proposals) == 1 and 300 < proposals[0].center[0] < 340  # one blob, between the heads
    # its crop shows no face at its centre; the two it does show are proposed and followed
    result = finder.process(frame, 0)
    centres = sorted(round(face.center[0]) for face in result.faces)
    assert len(centres) == 2 and abs(centres[0] - 260) < 6 and abs(centres[1] - 380) < 6


def test_a_face_above_a_bare_chest_is_followed_on_the_face():
    frame = np.full((360, 640, 3), 90, np.uint8)
    cv2.circle(frame, (320, 110), 28, SKIN_BGR, -1)  # the face ...
    cv2.rectangle(frame, (290, 135), (350, 330), SKIN_BGR, -1)  # ... and the chest's skin under it
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, find_every=100)
    for index in range(4):
        result = finder.process(frame, index)
    (face,) = result.faces
    crop = finder.tracker.tracks[0].crop
    assert abs(crop.cx - 320) < 10 and crop.cy < 150 and crop.side < 250  # on the head, not the chest
    grid = cv2.resize(result.mask, (640, 360))
    assert grid[110, 320] > 0.5


def test_the_zoomed_pass_adds_a_big_face_the_coarse_pass_missed_but_not_pieces_of_a_found_one():
    frame_side = 435
    small = frame_side / 3
    found = Box(20, 80, 140, 250)  # a face the coarse pass found
    piece = Box(30, 90, 135, 260)  # the zoomed pass sees it run into the neck: a big blob, centre inside it
    missed = Box(320, 40, 430, 230)  # a man the coarse pass did not paint, his blob run into his chest
    tiny = Box(200, 20, 230, 60)  # a small face elsewhere
    low_piece = Box(60, 150, 100, 300)  # its chin and neck: little overlap (IoU 0.18), centre inside its box
    added = zoomed_additions([found], [piece, low_piece, missed, tiny], small)
    assert added == [missed, tiny]
    assert min(missed.size, piece.size, low_piece.size) >= small  # the old rule kept only blobs under a third


def test_a_tall_blob_of_two_faces_one_above_the_other_proposes_the_lower_one():
    blob = Box(400, 100, 456, 225)  # a woman's face and, under it, the man standing in front of her
    upper = Box(422, 100, 456, 155)  # what the crop aimed at its head found
    (rest,) = below_heads([blob], [upper])
    assert rest == Box(400, 155, 456, 225)
    assert below_heads([blob], [Box(400, 190, 456, 225)]) == []  # no face found at its head
    assert below_heads([Box(400, 100, 456, 170)], [upper]) == []  # not tall: a face and its neck
    assert below_heads([blob], [Box(422, 100, 456, 190)]) == []  # under the face: too little left for one

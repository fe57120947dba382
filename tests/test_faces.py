"""Every face in the frame: crops and their way back, the full-frame pass, tracking, the memory of lost faces.

A colour-keyed stand-in for the model (skin-toned pixels are "face") makes the geometry and
the bookkeeping exact; the shipped model is exercised in the slow tier.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facecam.model_card import ModelCard
from facecam.realtime.crops import Box, Crop, boxes_of_blobs, crop_pixels, iou, keep_blobs_touching, paste_max
from facecam.realtime.faces import FaceFinder
from facecam.realtime.passes import CROP_DETAIL, crop_input_side, finder_settings, grid_shape
from facecam.realtime.scene import is_scene_cut
from facecam.realtime.tracking import REJECT_FRAMES, FaceTracker, left_behind
from facecam.realtime.verifier import believed

SKIN_BGR = (120, 160, 220)


class ColourKeyedSegmenter:
    """Paints as face every pixel close to SKIN_BGR: a model whose answer the test knows."""

    card = ModelCard(input_size=(64, 64), normalization_in_graph=True, color_order="BGR")

    def __init__(self) -> None:
        self.runs = 0

    def infer_batch(self, tensor: np.ndarray) -> np.ndarray:
        self.runs += 1
        distance = np.abs(tensor - np.asarray(SKIN_BGR, np.float32)[None, :, None, None]).max(axis=1)
        return np.clip(1.5 - distance / 20, 0, 1).astype(np.float32)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        return self.infer_batch(tensor)[0]

    def infer_first_looks(self, tensor: np.ndarray) -> np.ndarray:
        return self.infer_batch(tensor)


def scene(faces: list[tuple[int, int, int]], size: tuple[int, int] = (360, 640), shade: int = 90) -> np.ndarray:
    """A grey frame with a skin-toned ellipse (a 'face') of each ``(cx, cy, height)``."""
    frame = np.full((*size, 3), shade, np.uint8)
    for cx, cy, height in faces:
        cv2.ellipse(frame, (cx, cy), (int(height * 0.4), height // 2), 0, 0, 360, SKIN_BGR, -1)
    return frame


def test_a_crop_and_its_mask_come_back_to_the_same_place():
    frame = scene([(300, 200, 40)])
    crop = Crop.around(Box(284, 180, 316, 220))
    pixels = crop_pixels(frame, crop, 64)
    assert pixels.shape == (64, 64, 3)
    assert tuple(pixels[32, 32]) == SKIN_BGR  # the face is at the crop's centre
    probability = (np.abs(pixels.astype(int) - SKIN_BGR).max(axis=2) < 10).astype(np.float32)
    grid = np.zeros((180, 320), np.float32)  # half the frame's size
    paste_max(grid, probability, crop, 0.5)
    truth = cv2.resize((np.abs(frame.astype(int) - SKIN_BGR).max(axis=2) < 10).astype(np.float32), (320, 180))
    assert iou_of(grid > 0.5, truth > 0.5) > 0.85
    assert not grid[:, :100].any()  # nothing outside the crop's footprint


def test_a_crop_past_the_frame_edge_pastes_only_inside():
    grid = np.zeros((100, 100), np.float32)
    paste_max(grid, np.ones((64, 64), np.float32), Crop(5, 5, 40), 1.0)
    assert grid[:25, :25].all() and not grid[30:, :].any() and not grid[:, 30:].any()


def iou_of(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_only_the_blob_at_the_crop_centre_is_kept():
    probability = np.zeros((64, 64), np.float32)
    cv2.circle(probability, (32, 32), 10, 1.0, -1)  # the face the crop was cut for
    cv2.circle(probability, (5, 5), 4, 1.0, -1)  # a neighbour's face in the corner
    seed = np.zeros((64, 64), bool)
    seed[28:36, 28:36] = True
    kept = keep_blobs_touching(probability, seed, 0.5)
    assert kept[32, 32] == 1.0 and kept[5, 5] == 0.0


def test_blobs_become_boxes_in_frame_pixels():
    probability = np.zeros((50, 100), np.float32)
    probability[10:20, 30:40] = 1
    probability[0:1, 0:1] = 1  # one pixel: noise
    (box,) = boxes_of_blobs(probability, (2.0, 2.0), 0.5, min_pixels=4)
    assert (box.x0, box.y0, box.x1, box.y1) == (60, 20, 80, 40)


@pytest.mark.parametrize("sizes", [[120], [20, 40, 80], [16, 24, 32, 48, 64, 96, 128]])
def test_n_faces_of_different_sizes_give_n_faces(sizes):
    xs = np.cumsum([0] + [0.4 * (a + b) + 12 for a, b in zip(sizes, sizes[1:], strict=False)]) + 70
    positions = [(int(x), 120 + 100 * (i % 2), h) for i, (x, h) in enumerate(zip(xs, sizes, strict=True))]
    frame = scene(positions, size=(360, 640))
    result = FaceFinder(ColourKeyedSegmenter(), smoothing=0, find_every=1).process(frame, 0)
    assert len(result.faces) == len(sizes)
    for cx, cy, _height in positions:
        assert any(f.x0 <= cx <= f.x1 and f.y0 <= cy <= f.y1 for f in result.faces)
    (gh, gw), scale = grid_shape(frame.shape[:2])
    assert result.mask.shape == (gh, gw)
    truth = cv2.resize((np.abs(frame.astype(int) - SKIN_BGR).max(axis=2) < 10).astype(np.uint8), (gw, gh)) > 0
    assert iou_of(result.mask > 0.5, truth) > 0.8  # every face painted, nothing else


def test_the_full_frame_pass_runs_every_few_frames_and_crops_follow_the_face_between():
    segmenter = ColourKeyedSegmenter()
    # reuse_still off: a flat synthetic disc moving 6 px changes its crop too little to be seen as motion
    finder = FaceFinder(segmenter, smoothing=0.6, find_every=5, fine_every=10, reuse_still=False)
    ids = []
    for i in range(12):
        result = finder.process(scene([(200 + 6 * i, 180, 60)]), i)
        assert len(result.faces) == 1
        face = result.faces[0]
        assert abs((face.x0 + face.x1) / 2 - (200 + 6 * i)) < 4  # the crop followed the moving face
        ids.append(finder.tracker.tracks[0].id)
    assert len(set(ids)) == 1  # one track, handed from frame to frame
    # a crop run every frame; the full-frame pass at 0, 5 and 10, its zoomed second scale at 0 and 10
    assert segmenter.runs == 12 + 3 + 2


def test_a_new_face_is_picked_up_at_the_next_full_frame_pass():
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, find_every=4)
    counts = [
        len(finder.process(scene([(150, 180, 60)] + ([(450, 180, 60)] if i >= 2 else [])), i).faces) for i in range(6)
    ]
    assert counts == [1, 1, 1, 1, 2, 2]


def test_a_lost_face_is_held_for_the_memory_and_no_longer():
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, find_every=100, fps=10, memory_seconds=0.5)
    finder.process(scene([(300, 180, 60)]), 0)
    held_at = []
    for i in range(1, 12):
        result = finder.process(scene([], shade=92), i)  # the face is gone; same light, no cut
        assert not result.faces or i < 2
        held_at.append(bool(result.held))
    # lost after MISS_LIMIT (2) empty frames, at frame 2; held through frame 2 + 5, then forgotten
    assert held_at == [False, True, True, True, True, True, True, False, False, False, False]
    box = finder.tracker.held[0].box if finder.tracker.held else None
    assert box is None


def test_a_held_face_covers_where_the_face_was_grown_a_little():
    tracker = FaceTracker(memory_frames=3)
    (track,) = tracker.propose([Box(100, 100, 140, 150)], (480, 640))
    tracker.seen(track, Box(100, 100, 140, 150), (480, 640), 6)
    tracker.missed(track, 7)
    assert tracker.tracks == [track] and not tracker.held  # a blink of the model is forgiven
    tracker.missed(track, 8)
    (held,) = tracker.held
    assert held.boxes == [held.box]  # no pan: one place
    assert held.until == 11 and held.box.size > 50 and iou(held.box, Box(100, 100, 140, 150)) > 0.6


def test_a_face_that_jumps_to_another_place_leaves_its_last_place_held():
    tracker = FaceTracker(memory_frames=3)
    merged = Box(100, 100, 160, 220)  # two heads, one above the other, in one blob
    (track,) = tracker.propose([merged], (480, 640))
    tracker.seen(track, merged, (480, 640), 4)
    tracker.seen(track, Box(103, 101, 163, 221), (480, 640), 5)  # it moved a little: nothing left behind
    assert not tracker.held
    tracker.seen(track, Box(110, 180, 150, 220), (480, 640), 6)  # it settled on the lower head
    # the upper head stays covered: the top of the last box, above the new one (and the slivers
    # beside the new one), for the memory
    assert all(h.until == 9 for h in tracker.held)
    (top,) = [h.box for h in tracker.held if h.box.y1 < 195]
    assert iou(top, Box(103, 101, 163, 180)) > 0.6
    assert left_behind(Box(0, 0, 10, 10), Box(20, 20, 30, 30)) == [Box(0, 0, 10, 10)]  # elsewhere: all of it
    assert left_behind(Box(0, 0, 10, 10), Box(-1, -1, 11, 11)) == []  # covered: nothing
    assert tracker.tracks == [track] and track.face == Box(110, 180, 150, 220)


def test_every_part_a_track_leaves_is_held_not_only_the_largest():
    # a face and the body below it in one box (group1.mp4, frame 210); the track settles on the
    # chest: the face is in the strip above it, which the old largest-strip rule did not hold
    old, chest = Box(510, 159, 640, 360), Box(555, 225, 585, 287)
    parts = left_behind(old, chest)
    assert all(iou(part, chest) == 0 for part in parts)  # none is taken for the track's own face
    face = Box(515, 164, 553, 220)
    assert any(
        part.x0 <= face.x0 and part.y0 <= face.y0 and face.x1 <= part.x1 and face.y1 <= part.y1 for part in parts
    )
    area = sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in parts)
    assert area == (old.x1 - old.x0) * (old.y1 - old.y0) - (chest.x1 - chest.x0) * (chest.y1 - chest.y0)
    assert left_behind(Box(0, 0, 100, 100), Box(2, 0, 100, 100)) == []  # a 2 px sliver holds no face


def test_the_parts_left_when_the_new_box_crosses_a_corner_of_the_old_one():
    old, new = Box(0, 0, 100, 100), Box(60, 60, 160, 160)
    parts = left_behind(old, new)
    assert all(iou(part, new) == 0 and old.x0 <= part.x0 and part.x1 <= old.x1 for part in parts)
    assert all(iou(a, b) == 0 for i, a in enumerate(parts) for b in parts[i + 1 :])
    assert sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in parts) == 100 * 100 - 40 * 40  # all but the corner


def test_a_first_look_that_finds_a_small_part_of_its_proposal_holds_the_rest():
    tracker = FaceTracker(memory_frames=5)
    proposal = Box(564, 6, 606, 68)  # a face split by sunglasses, say
    (track,) = tracker.propose([proposal], (360, 640))
    tracker.seen(track, Box(562, 40, 578, 68), (360, 640), 0)  # the crop painted one cheek
    assert tracker.held and all(h.until == 5 for h in tracker.held)
    forehead = Box(570, 10, 600, 35)
    assert any(
        h.box.x0 <= forehead.x0 and h.box.y0 <= forehead.y0 and forehead.x1 <= h.box.x1 and forehead.y1 <= h.box.y1
        for h in tracker.held
    )
    (whole,) = tracker.propose([Box(300, 100, 340, 150)], (360, 640))
    tracker.seen(whole, Box(302, 104, 338, 148), (360, 640), 0)  # the face the proposal was: nothing held besides
    assert all(h.box.x1 < 300 or h.box.x0 > 340 for h in tracker.held)


def test_anonymize_follows_a_seen_face_at_fewer_model_pixels_than_its_first_look():
    class Segmenter224:
        card = ModelCard(input_size=(224, 224), normalization_in_graph=True, color_order="BGR")

    for mode in ("anonymize", "blur"):
        settings = finder_settings(mode)
        finder = FaceFinder(Segmenter224(), **settings)
        (track,) = finder.tracker.propose([Box(100, 100, 160, 160)], (360, 640))
        side = track.crop.side  # a 60 px face: a crop of about 132 frame px
        assert finder.crop_input(track) == crop_input_side(side, 224, stream=True) == 224  # the first look
        track.frames = 1  # its face was seen: followed
        followed = finder.crop_input(track)
        assert followed == crop_input_side(side, 224, stream=True, detail=settings["follow_detail"])
        assert followed < 224 if mode == "anonymize" else followed == 224
    assert finder_settings("blur")["follow_detail"] == CROP_DETAIL
    photo = FaceFinder(Segmenter224(), photo=True, **finder_settings("anonymize"))
    (track,) = photo.tracker.propose([Box(100, 100, 160, 160)], (360, 640))
    track.frames = 1
    assert photo.crop_input(track) == 224  # a photo's faces keep the full detail


def test_a_held_face_is_found_again_only_by_a_track_begun_after_it_was_held():
    tracker = FaceTracker(memory_frames=5)
    woman, man = Box(60, 131, 175, 325), Box(94, 91, 222, 262)  # overlapping boxes, IoU ~0.3
    lost, neighbour = tracker.propose([woman, Box(300, 91, 428, 262)], (360, 640))
    for frame in (0, 1):  # (the neighbour's track came from elsewhere: two overlapping proposals are one)
        tracker.seen(lost, woman, (360, 640), frame)
        tracker.seen(neighbour, man, (360, 640), frame)
    tracker.missed(lost, 2)
    tracker.missed(lost, 3)  # lost: held

    def her_hold() -> list:
        return [h for h in tracker.held if iou(h.box, woman) > 0.5]

    assert tracker.tracks == [neighbour] and len(her_hold()) == 1
    tracker.expire(4)
    assert len(her_hold()) == 1  # the neighbour's track overlaps the hold but is not her face
    (again,) = tracker.propose([Box(50, 150, 110, 330)], (360, 640))  # a later pass finds her
    tracker.seen(again, Box(50, 150, 110, 330), (360, 640), 5)
    tracker.expire(5)
    assert not her_hold()


def test_a_proposal_whose_crop_shows_no_face_ends_at_once_held_and_is_not_proposed_again_at_once():
    tracker = FaceTracker(memory_frames=3)
    blob = Box(100, 100, 140, 200)  # a face and the chest below it, say
    (track,) = tracker.propose([blob], (480, 640))
    tracker.missed(track, 7)
    assert not tracker.tracks and len(tracker.held) == 1
    assert tracker.propose([blob], (480, 640)) == []  # the same blob, proposed after the crop pass
    assert tracker.propose([Box(300, 100, 340, 150)], (480, 640))  # another place: a new track
    tracker.expire(7 + REJECT_FRAMES + 1)
    assert tracker.propose([blob], (480, 640))  # at a later full-frame pass it is looked at again


def test_a_proposal_that_cannot_hide_a_face_is_not_held_when_its_crop_shows_none():
    tracker = FaceTracker(memory_frames=3)
    blob = Box(100, 100, 118, 118)  # a fragment of a helmet, say, looked at closely
    (track,) = tracker.propose([blob], (480, 640))
    tracker.missed(track, 7, may_hide_a_face=False)
    assert not tracker.tracks and not tracker.held
    assert tracker.propose([blob], (480, 640)) == []  # nor proposed again at once


def test_a_proposal_with_no_face_in_its_crop_is_held_when_seen_closely_or_at_the_side_or_top_edge():
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, fps=10, memory_seconds=1)
    frame = scene([])  # nothing face-coloured: every first look finds no face
    small = Box(100, 100, 118, 118)  # a 40 px crop seen at the model's 64 px: closely
    middle = Box(300, 100, 420, 220)  # a 264 px crop shown at 64 px (its faces shrunk 4x), mid-frame
    top = Box(300, 0, 420, 120)  # the same at the top edge, where a face cut in half comes in
    bottom = Box(100, 240, 220, 360)  # and at the bottom edge, where bodies are
    new = finder.tracker.propose([small, middle, top, bottom], frame.shape[:2])
    (gh, gw), scale = grid_shape(frame.shape[:2])
    finder._segment_and_merge(frame, new, 3, np.zeros((gh, gw), np.float32), scale)
    assert not finder.tracker.tracks
    held = [h.box for h in finder.tracker.held]
    assert len(held) == 2
    assert any(iou(b, small) > 0.6 for b in held) and any(iou(b, top) > 0.6 for b in held)


def test_a_track_dropped_as_a_duplicate_leaves_the_face_it_began_on_held():
    tracker = FaceTracker(memory_frames=3)
    woman, man = Box(340, 177, 374, 246), Box(329, 141, 374, 176)  # his chin on her forehead
    her, him = tracker.propose([woman, man], (360, 640))
    for frame in range(4):
        tracker.seen(her, woman, (360, 640), frame)  # followed longer than he is
    tracker.seen(him, man, (360, 640), 1)
    tracker.seen(him, Box(334, 141, 372, 215), (360, 640), 2)  # his blob runs into hers
    tracker.seen(him, Box(337, 160, 374, 244), (360, 640), 3)  # and settles on her face
    assert not tracker.held
    tracker.drop_duplicates(3)
    assert tracker.tracks == [her]
    assert any(h.until == 6 and iou(h.box, man) > 0.5 for h in tracker.held)


def test_a_duplicate_s_first_face_is_not_held_once_older_than_the_memory():
    tracker = FaceTracker(memory_frames=3)
    woman, man = Box(340, 177, 374, 246), Box(329, 141, 374, 176)
    her, him = tracker.propose([woman, man], (360, 640))
    for frame in range(8):
        tracker.seen(her, woman, (360, 640), frame)
    tracker.seen(him, man, (360, 640), 1)  # first seen at frame 1
    tracker.seen(him, Box(337, 160, 374, 244), (360, 640), 6)  # and on her face five frames on
    held = list(tracker.held)  # (what the jump itself left behind, see left_behind)
    tracker.drop_duplicates(6)
    assert tracker.tracks == [her] and tracker.held == held


def test_a_face_lost_in_a_pan_is_held_where_it_was_and_where_the_picture_took_it():
    tracker = FaceTracker(memory_frames=5)
    face = Box(100, 100, 140, 150)
    (track,) = tracker.propose([face], (360, 640))
    tracker.seen(track, face, (360, 640), 0)
    for frame in (1, 2):  # the camera pans right and tilts up a little: the picture moves
        tracker.shift_held((-4.0, 1.0))  # (the finder shifts before it looks at the frame)
        tracker.missed(track, frame)  # lost at frame 2, two frames' shift after it was seen
    (held,) = tracker.held
    assert held.boxes[0].center == face.center  # where it was
    assert held.boxes[1].center == (face.center[0] - 8, face.center[1] + 2)  # where the picture took it
    tracker.shift_held((-64.0, 1.0))  # far from where it was lost
    moved = tracker.held[0].boxes[1]
    assert moved.center == (face.center[0] - 72, face.center[1] + 3)
    found = Box(moved.x0 + 3, moved.y0 + 3, moved.x1 - 3, moved.y1 - 3)
    (again,) = tracker.propose([found], (360, 640))  # a later pass finds it where the picture took it
    tracker.seen(again, found, (360, 640), 3)
    tracker.expire(3)
    assert not tracker.held


def test_a_photo_keeps_every_proposal_whose_crop_shows_no_face_held():
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, fps=10, memory_seconds=1, photo=True)
    frame = scene([])
    middle = Box(300, 100, 420, 220)  # seen shrunk, mid-frame: not held in a stream
    new = finder.tracker.propose([middle], frame.shape[:2])
    (gh, gw), scale = grid_shape(frame.shape[:2])
    finder._segment_and_merge(frame, new, 0, np.zeros((gh, gw), np.float32), scale)
    (held,) = finder.tracker.held
    assert iou(held.box, middle) > 0.6


def test_a_scene_cut_drops_the_faces_and_their_memory():
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, find_every=100, fps=10, memory_seconds=1)
    finder.process(scene([(300, 180, 60)]), 0)
    finder.process(scene([], shade=92), 1)
    finder.process(scene([], shade=92), 2)
    assert finder.tracker.held  # lost, held
    result = finder.process(scene([], shade=250), 3)  # a cut: everything far brighter
    assert not result.held and not result.faces
    assert is_scene_cut(np.zeros((8, 8), np.uint8), np.full((8, 8), 200, np.uint8))
    assert not is_scene_cut(np.zeros((8, 8), np.uint8), np.full((8, 8), 20, np.uint8))


def test_two_tracks_on_one_face_become_one():
    tracker = FaceTracker(memory_frames=0)
    a, b = tracker.propose([Box(0, 0, 40, 40), Box(100, 0, 140, 40)], (480, 640))
    tracker.seen(a, Box(0, 0, 40, 40), (480, 640), 0)
    tracker.seen(a, Box(0, 0, 40, 40), (480, 640), 1)
    tracker.seen(b, Box(2, 0, 42, 40), (480, 640), 1)  # b drifted onto a's face
    tracker.drop_duplicates(1)
    assert [t.id for t in tracker.tracks] == [a.id]


class ScriptedVerifier:
    """A verifier whose scores the test sets: ``score`` for every crop."""

    def __init__(self, score: float) -> None:
        self.score = score

    def scores_of(self, frame, crops):
        return np.full(len(crops), self.score, np.float32)


def test_the_verifier_keeps_faces_and_drops_a_track_it_no_longer_believes():
    verifier = ScriptedVerifier(0.1)
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, find_every=2, verifier=verifier)
    assert not finder.process(scene([(300, 180, 60)]), 0).faces  # proposed, not believed: not followed
    verifier.score = 0.9
    assert len(finder.process(scene([(300, 180, 60)]), 2).faces) == 1
    verifier.score = 0.3  # doubtful, above half the threshold: kept (a face turning away)
    assert len(finder.process(scene([(300, 180, 60)]), 4).faces) == 1
    verifier.score = 0.1  # under half the threshold at the next full-frame pass: dropped, not held
    result = finder.process(scene([(300, 180, 60)]), 6)
    assert not result.faces and not result.held


class CropRecordingVerifier(ScriptedVerifier):
    """A ScriptedVerifier that remembers the crops it was asked about."""

    def __init__(self, score: float) -> None:
        super().__init__(score)
        self.crops: list[Crop] = []

    def scores_of(self, frame, crops):
        self.crops += crops
        return super().scores_of(frame, crops)


def test_a_big_face_is_trusted_but_a_long_thin_blob_is_verified():
    frame = np.zeros((480, 640, 3), np.uint8)  # trusted: a third of the long side, half that wide
    portrait = Box(200, 100, 420, 360)  # 220 x 260: a face as a webcam sees it
    with_chest = Box(20, 60, 140, 400)  # 120 x 340: a face with its neck and a bare chest
    sleeve = Box(500, 100, 550, 400)  # 50 x 300: as long as a portrait, a sleeve's shape
    verifier = CropRecordingVerifier(0.1)
    assert believed(verifier, frame, [portrait, with_chest, sleeve], 0.5, 1 / 3) == [portrait, with_chest]
    assert verifier.crops == [Crop.around(sleeve, proposal=True)]  # only the sleeve was asked about
    verifier.score = 0.9
    assert believed(verifier, frame, [portrait, with_chest, sleeve], 0.5, 1 / 3) == [portrait, with_chest, sleeve]


@pytest.mark.parametrize("crop", [Crop(100, 60, 64), Crop(10, 110, 80), Crop(150, 5, 300), Crop(-50, -50, 40)])
def test_crop_pixels_past_the_frame_are_zeroed_and_no_others(crop):
    from facecam.realtime.crops import zeroed_outside_frame

    size, (height, width) = 48, (120, 160)
    probability = np.random.default_rng(3).random((size, size), dtype=np.float32)
    left, top, step = crop.cx - crop.side / 2, crop.cy - crop.side / 2, crop.side / size
    centres = (np.arange(size) + 0.5) * step
    inside = ((top + centres >= 0) & (top + centres < height))[:, None] & (
        (left + centres >= 0) & (left + centres < width)
    )[None, :]
    got = zeroed_outside_frame(probability, crop, (height, width))
    np.testing.assert_array_equal(got, np.where(inside, probability, 0))
    assert got is not probability and probability.min() > 0  # a copy: the model's look is kept as it was


def test_every_blob_the_seed_touches_is_kept_with_its_rim_and_only_those():
    probability = np.zeros((64, 64), np.float32)
    cv2.circle(probability, (20, 20), 8, 0.9, -1)
    cv2.circle(probability, (44, 44), 8, 0.9, -1)
    cv2.circle(probability, (8, 56), 4, 0.9, -1)
    probability = cv2.GaussianBlur(probability, (0, 0), 1.5)  # a soft rim under the threshold
    seed = np.zeros((64, 64), bool)
    seed[18:22, 18:22] = seed[42:46, 42:46] = True  # on two of the three
    kept = keep_blobs_touching(probability, seed, 0.5)
    assert kept[20, 20] > 0.5 and kept[44, 44] > 0.5 and kept[56, 8] == 0
    assert 0 < kept[20, 29] < 0.5  # the rim of a kept blob stays
    corner = np.zeros((64, 64), bool)
    corner[:36, :36] = True
    one = np.where(corner, probability, 0).astype(np.float32)  # the top left blob alone: the one-blob path
    np.testing.assert_array_equal(keep_blobs_touching(one, seed, 0.5), np.where(corner, kept, 0))
    assert not keep_blobs_touching(one, ~np.ones_like(seed), 0.5).any()


def test_the_iou_of_every_pair_is_the_iou_of_each_to_the_last_bit():
    from facecam.realtime.crops import iou_matrix

    rng = np.random.default_rng(5)
    corners = rng.uniform(0, 100, (40, 2))
    sides = rng.uniform(0, 30, (40, 2))
    boxes = [Box(x, y, x + w, y + h) for (x, y), (w, h) in zip(corners, sides, strict=True)]
    boxes += [Box(10, 10, 20, 20), Box(20, 10, 30, 20), Box(10, 10, 10, 20)]  # touching edges, no area
    got = iou_matrix(boxes, boxes[::-1])
    want = np.array([[iou(a, b) for b in boxes[::-1]] for a in boxes])
    assert (got == want).all() and (want > 0).sum() > len(boxes)  # equal to the bit, and many overlap
    assert iou_matrix([], boxes).shape == (0, len(boxes))

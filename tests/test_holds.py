"""A lost face stays anonymised: the memory of lost faces (holds), what a track leaves behind,
the proposals whose crop shows no face, and holds under a panning camera.

Uses the colour-keyed stand-in for the model of test_faces.
"""

from __future__ import annotations

import cv2
import numpy as np
from test_faces import ColourKeyedSegmenter, scene

from facecam.realtime.crops import Box, iou
from facecam.realtime.faces import FaceFinder
from facecam.realtime.passes import grid_shape
from facecam.realtime.scene import is_scene_cut
from facecam.realtime.tracking import REJECT_FRAMES, FaceTracker, left_behind


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


def test_under_a_pan_what_a_track_leaves_and_a_duplicate_s_first_face_are_held_where_the_picture_took_them():
    tracker = FaceTracker(memory_frames=5)
    woman, man = Box(340, 177, 374, 246), Box(329, 141, 374, 176)
    her, him = tracker.propose([woman, man], (360, 640))
    tracker.seen(her, woman, (360, 640), 0)
    tracker.seen(her, woman, (360, 640), 1)
    tracker.seen(him, man, (360, 640), 1)
    tracker.shift_held((-10.0, 0.0))  # the picture moves 10 px left: both faces with it
    her_now = woman.shifted(-10, 0)
    tracker.seen(her, her_now, (360, 640), 2)
    tracker.seen(him, her_now.shifted(0, -12), (360, 640), 2)  # his blob ran into her face
    # what his last box left (his face, where it was) is held there and 10 px left of it
    (left,) = [h for h in tracker.held if h.box.y1 < 175]
    assert left.offset == (-10.0, 0.0) and abs(left.boxes[1].center[0] - (left.box.center[0] - 10)) < 1e-9
    tracker.held.clear()
    tracker.seen(him, her_now.shifted(0, -2), (360, 640), 2)
    tracker.drop_duplicates(2)
    assert tracker.tracks == [her]
    (began,) = [h for h in tracker.held if h.box.center[1] < 170]  # his first face, where the picture took it
    assert abs(began.box.center[0] - (man.center[0] - 10)) < 1e-9 and began.boxes == [began.box]


def test_a_duplicate_s_first_face_is_not_held_once_older_than_the_memory():
    tracker = FaceTracker(memory_frames=3)
    woman, man = Box(340, 177, 374, 246), Box(329, 141, 374, 176)
    her, him = tracker.propose([woman, man], (360, 640))
    for frame in range(8):
        tracker.seen(her, woman, (360, 640), frame)
    tracker.seen(him, man, (360, 640), 1)  # first seen at frame 1
    tracker.seen(him, Box(337, 160, 374, 244), (360, 640), 6)  # and on her face five frames on
    tracker.held.clear()  # (what the jump itself left behind, see left_behind)
    tracker.drop_duplicates(6)
    assert tracker.tracks == [her]
    # his first face (from y = 141) is not held: only the strip of his last box above hers (from
    # y = 160, see the next test)
    assert tracker.held and all(h.box.y0 > 150 for h in tracker.held)


def test_what_a_dropped_duplicate_s_box_holds_beyond_its_twin_s_is_held():
    # A man standing behind a woman: his face and her body one blob, followed by a track that
    # converged on hers and was dropped; his face, above hers, was in no other box.
    tracker = FaceTracker(memory_frames=12)
    hers, both = Box(446, 150, 502, 279), Box(446, 122, 502, 279)
    her, them = tracker.propose([hers, Box(300, 100, 340, 150)], (360, 640))
    for frame in range(5):
        tracker.seen(her, hers, (360, 640), frame)  # followed longer
    tracker.seen(them, both, (360, 640), 4)
    tracker.held.clear()
    assert iou(both, hers) > 0.5
    tracker.drop_duplicates(4)
    assert tracker.tracks == [her]
    (above,) = tracker.held  # the strip of the dropped box above her face: where his face is
    assert above.until == 16 and iou(above.box, Box(446, 122, 502, 150).grown(1.25)) > 0.9


def test_a_face_lost_in_a_pan_is_held_where_it_was_and_where_the_picture_took_it():
    tracker = FaceTracker(memory_frames=5)
    face = Box(100, 100, 140, 150)
    tracker.shift_held((-30.0, 0.0))  # a pan before the face was seen counts for nothing
    (track,) = tracker.propose([face], (360, 640))
    tracker.shift_held((-30.0, 0.0))
    (blob,) = tracker.propose([Box(400, 100, 440, 150)], (360, 640))  # proposed in this frame
    tracker.missed(blob, 0)  # no face in its crop: held where it is, nothing to move yet
    assert [h.offset for h in tracker.held] == [(0.0, 0.0)]
    tracker.held.clear()
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


def _textured(frame: np.ndarray, box: Box, seed: int) -> np.ndarray:
    """``frame`` with a patch of smooth grey texture (a lamp, a sleeve; no skin: no face to the
    stand-in model) at ``box``."""
    out = frame.copy()
    x0, y0, x1, y1 = (int(v) for v in (box.x0, box.y0, box.x1, box.y1))
    noise = np.random.default_rng(seed).normal(0, 60, (y1 - y0, x1 - x0)).astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(30 + cv2.GaussianBlur(noise, (0, 0), 2), 0, 255).astype(np.uint8)[..., None]
    return out


def test_a_held_proposal_proposed_again_over_the_same_pixels_is_held_again_without_a_look():
    segmenter = ColourKeyedSegmenter()
    finder = FaceFinder(segmenter, smoothing=0, fps=10, memory_seconds=1)  # a memory of 10 frames
    blob = Box(100, 100, 118, 118)  # looked at closely: held when its crop shows no face
    frame = _textured(scene([]), blob, seed=0)
    new = finder.tracker.propose([blob], frame.shape[:2])
    (gh, gw), scale = grid_shape(frame.shape[:2])
    finder._segment_and_merge(frame, new, 3, np.zeros((gh, gw), np.float32), scale)
    (held,) = finder.tracker.held
    assert held.looked is not None and held.until == 13
    runs = segmenter.runs
    # the next pass proposes it again over the same pixels: held again from frame 9, no look
    assert finder.verified(frame, [blob], 9) == [] and segmenter.runs == runs
    (held,) = finder.tracker.held
    assert held.until == 19 and iou(held.box, blob) > 0.6
    # ... and moved a little with the picture: the look moved with it stands for a new one
    moved = Box(103, 101, 121, 119)
    assert finder.verified(np.roll(frame, (1, 3), axis=(0, 1)), [moved], 12) == [] and segmenter.runs == runs
    # over changed pixels, or once its hold ended, it is looked at again
    assert finder.verified(_textured(scene([]), blob, seed=1), [moved], 14) == [moved]
    assert finder.verified(frame, [Box(300, 200, 318, 218)], 14) == [Box(300, 200, 318, 218)]  # elsewhere
    assert finder.verified(frame, [blob], 40) == [blob]


def test_without_reused_looks_every_proposal_is_looked_at():
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, fps=10, memory_seconds=1, reuse_still=False)
    blob = Box(100, 100, 118, 118)
    frame = _textured(scene([]), blob, seed=0)
    new = finder.tracker.propose([blob], frame.shape[:2])
    (gh, gw), scale = grid_shape(frame.shape[:2])
    finder._segment_and_merge(frame, new, 3, np.zeros((gh, gw), np.float32), scale)
    assert finder.tracker.held and finder.verified(frame, [blob], 9) == [blob]

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
from facecam.realtime.tracking import FaceTracker
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
    assert len(finder.process(scene([(300, 180, 60)]), 4).faces) == 1  # rechecked on its own box: confirmed
    verifier.score = 0.3  # doubtful, above half the threshold: a confirmed face is kept (turning away)
    assert len(finder.process(scene([(300, 180, 60)]), 6).faces) == 1
    verifier.score = 0.1  # under half the threshold at the next full-frame pass: dropped, not held
    result = finder.process(scene([(300, 180, 60)]), 8)
    assert not result.faces and not result.held


@pytest.mark.parametrize("mode", ["blur", "anonymize"])
def test_a_track_never_confirmed_is_dropped_when_doubted_but_anonymize_keeps_it(mode):
    """A proposal taken in on its loose box (the sample clip's helmet ring) whose own box the
    verifier then doubts is dropped at its first recheck; anonymize keeps a doubted face covered."""
    settings = finder_settings(mode)
    verifier = ScriptedVerifier(0.9)
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, find_every=2, verifier=verifier, **settings)
    assert len(finder.process(scene([(300, 180, 60)]), 0).faces) == 1
    verifier.score = 0.9 * settings["verify_threshold"]  # under the threshold, over half of it
    kept = len(finder.process(scene([(300, 180, 60)]), 2).faces)
    assert kept == (1 if mode == "anonymize" else 0)


def test_a_track_confirmed_under_anonymize_is_judged_again_after_a_switch_to_blur():
    """Confirmed at anonymize's threshold (0.2) is not confirmed at blur's (0.5): the ring, kept
    while anonymizing, is dropped at the first recheck after the switch."""
    verifier = ScriptedVerifier(0.9)
    finder = FaceFinder(
        ColourKeyedSegmenter(), smoothing=0, find_every=2, verifier=verifier, **finder_settings("anonymize")
    )
    assert len(finder.process(scene([(300, 180, 60)]), 0).faces) == 1
    verifier.score = 0.33  # the ring's score: over anonymize's threshold, under blur's
    assert len(finder.process(scene([(300, 180, 60)]), 2).faces) == 1
    finder.follow_mode("blur")
    assert finder.confirm_tracks and finder.verify_threshold == 0.5
    assert not finder.process(scene([(300, 180, 60)]), 4).faces


def test_a_recheck_keeps_confirmed_tracks_to_half_the_threshold_and_others_to_the_threshold():
    from facecam.realtime.crops import Crop
    from facecam.realtime.smoothing import TemporalSmoother
    from facecam.realtime.tracking import Track, rechecked

    def track(k: int, best: float = 0.0) -> Track:
        return Track(k, Crop(50, 50, 40), Box(40, 40, 60, 60), TemporalSmoother(), best_score=best)

    tracks = [track(0, 0.9), track(1, 0.9), track(2), track(3)]
    scores = [0.3, 0.2, 0.3, None]  # doubted / under half / doubted, never confirmed / not judged (a big face)
    assert [t.id for t in rechecked(tracks, scores, 0.5)] == [0, 3]
    assert [t.id for t in rechecked(tracks, scores, 0.5, confirm=False)] == [0, 2, 3]
    new = track(9)
    assert rechecked([new], [0.7], 0.5) == [new] and new.best_score == pytest.approx(0.7)
    assert rechecked([new], [0.3], 0.5) == [new]  # confirmed at 0.5: kept down to 0.25
    assert rechecked([new], [0.3], 0.8) == []  # but not confirmed at a higher threshold
    big = track(10)  # a face once big enough to be trusted, later smaller and turning away
    assert rechecked([big], [None], 0.5) == [big] and rechecked([big], [0.3], 0.5) == [big]


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
    from facecam.realtime.crops import corners, iou_matrix, ious_with

    rng = np.random.default_rng(5)
    tops = rng.uniform(0, 100, (40, 2))
    sides = rng.uniform(0, 30, (40, 2))
    boxes = [Box(x, y, x + w, y + h) for (x, y), (w, h) in zip(tops, sides, strict=True)]
    boxes += [Box(10, 10, 20, 20), Box(20, 10, 30, 20), Box(10, 10, 10, 20)]  # touching edges, no area
    got = iou_matrix(boxes, boxes[::-1])
    want = np.array([[iou(a, b) for b in boxes[::-1]] for a in boxes])
    assert (got == want).all() and (want > 0).sum() > len(boxes)  # equal to the bit, and many overlap
    assert iou_matrix([], boxes).shape == (0, len(boxes))
    for a in boxes:  # one box against many, as the tracker asks
        assert (ious_with(a, corners(boxes)) == np.array([iou(a, b) for b in boxes])).all()


def test_the_tracker_finds_a_followed_face_and_a_repeated_unseen_proposal_as_box_by_box():
    """FaceTracker.follows and unseen_hold_of compare one box with arrays of tracks and holds;
    they answer as the rules box by box (IoU over the threshold, or the centre inside a track's
    face; the first live unseen hold matched where it was or moved with the picture)."""
    from facecam.realtime.crops import Crop, inside
    from facecam.realtime.smoothing import TemporalSmoother
    from facecam.realtime.tracking import DUPLICATE_IOU, SAME_FACE_IOU, FaceTracker, HeldFace, Track

    rng = np.random.default_rng(11)

    def random_box() -> Box:
        x, y, w, h = rng.uniform(0, 200), rng.uniform(0, 200), rng.uniform(5, 60), rng.uniform(5, 60)
        return Box(x, y, x + w, y + h)

    tracker = FaceTracker(memory_frames=12)
    for k in range(15):
        face = random_box()
        tracker.tracks.append(Track(k, Crop(*face.center, 2 * face.size), face, TemporalSmoother()))
    look = (Crop(0, 0, 10), np.zeros((4, 4), np.uint8))
    for k in range(60):
        box, offset = random_box(), tuple(rng.uniform(-20, 20, 2))
        until = 5 + k % 10  # some expired at frame 10
        tracker.held.append(HeldFace(box, until, k, offset, box, look if k % 4 else None))
    answers = {"followed": 0, "held": 0}
    for _ in range(400):
        proposal = random_box()
        follows = any(iou(proposal, t.face) > SAME_FACE_IOU or inside(proposal.center, t.face) for t in tracker.tracks)
        assert tracker.follows(proposal) == follows
        want = next(
            (
                h
                for h in tracker.held
                if h.looked is not None
                and h.until >= 10
                and max(iou(proposal, h.unseen), iou(proposal, h.unseen.shifted(*h.offset))) > DUPLICATE_IOU
            ),
            None,
        )
        assert tracker.unseen_hold_of(proposal, 10) is want
        answers["followed"] += follows
        answers["held"] += want is not None
    assert answers["followed"] > 20 and answers["held"] > 20  # both answers were asked for
    # two live holds that both match: the first held is the one returned, as box by box
    twins = FaceTracker(memory_frames=12)
    first, second = (HeldFace(Box(0, 0, 40, 40), 20, k, (0.0, 0.0), Box(0, 0, 40, 40), look) for k in (0, 1))
    twins.held = [first, second]
    assert twins.unseen_hold_of(Box(1, 1, 41, 41), 10) is first
    twins.held = [second, first]
    assert twins.unseen_hold_of(Box(1, 1, 41, 41), 10) is second
    assert not FaceTracker(memory_frames=12).follows(proposal)

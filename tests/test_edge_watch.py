"""Faces coming into view at the edge of a panning shot: the shift, the strips, and the finder finding them."""

from __future__ import annotations

import cv2
import numpy as np
from test_faces import SKIN_BGR, ColourKeyedSegmenter

from facecam.realtime.crops import Box
from facecam.realtime.edge_watch import BOTTOM, LEFT, RIGHT, TOP, EdgeWatch, incoming, scene_shift, strip_tile
from facecam.realtime.faces import FaceFinder
from facecam.realtime.processing import Halvings
from facecam.realtime.scene import scene_thumbnail

FRAME_HW = (360, 640)


def panorama(width: int = 1400, face_x: int | None = None, seed: int = 0) -> np.ndarray:
    """A grey wide picture of blotches ~20 px across (a texture the 64 px scene thumbnail still
    shows; nothing skin-toned), with a 60 px 'face' at ``face_x``."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 140, (FRAME_HW[0] // 20, width // 20), dtype=np.uint8)
    grey = cv2.resize(coarse, (width, FRAME_HW[0]), interpolation=cv2.INTER_CUBIC)
    picture = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    if face_x is not None:
        cv2.ellipse(picture, (face_x, 180), (24, 30), 0, 0, 360, SKIN_BGR, -1)
    return picture


def view(picture: np.ndarray, x0: int) -> np.ndarray:
    return np.ascontiguousarray(picture[:, x0 : x0 + FRAME_HW[1]])


def thumb(frame: np.ndarray) -> np.ndarray:
    return scene_thumbnail(frame, Halvings(frame))


def test_the_shift_of_a_panning_picture_is_measured_in_frame_pixels():
    picture = panorama()
    dx, dy = scene_shift(thumb(view(picture, 100)), thumb(view(picture, 112)), FRAME_HW)
    assert abs(dx - (-12)) < 3 and abs(dy) < 2  # the camera moved right: the picture moved left


def test_a_still_or_flat_picture_has_no_shift():
    still = thumb(view(panorama(), 100))
    assert max(map(abs, scene_shift(still, still, FRAME_HW))) < 0.5
    flat = thumb(np.full((*FRAME_HW, 3), 90, np.uint8))
    assert max(map(abs, scene_shift(flat, flat, FRAME_HW))) < 0.5


def test_a_shift_brings_new_picture_in_at_the_edge_it_moves_away_from_and_takes_some_out_at_the_other():
    assert incoming((-10.0, 0.0)) == (0.0, 0.0, -10.0, 10.0)  # top, bottom, left, right
    assert incoming((5.0, -3.0)) == (-3.0, 3.0, 5.0, -5.0)


def test_the_strips_lie_along_their_edges_a_fifth_deep_on_multiples_of_32():
    hw = (352, 640)
    assert strip_tile(RIGHT, hw) == (0, 352, 512, 640)
    assert strip_tile(LEFT, hw) == (0, 352, 0, 128)
    assert strip_tile(TOP, hw) == (0, 96, 0, 640)
    assert strip_tile(BOTTOM, hw) == (256, 352, 0, 640)


def test_a_pan_makes_the_incoming_edge_due_every_32nd_of_its_width_and_a_still_camera_nothing():
    picture, watch, still = panorama(), EdgeWatch(), EdgeWatch()
    due_at, still_due = [], []
    for i in range(30):
        frame = view(picture, 4 * i)  # the camera pans right, 4 px a frame
        strips = watch.due(thumb(frame), FRAME_HW, (736, 1280), 224)
        assert all(tile == strip_tile(RIGHT, watch.view_hw) for tile in strips)  # only the right edge
        due_at += [i] * len(strips)
        still_due += still.due(thumb(view(picture, 0)), FRAME_HW, (736, 1280), 224)
    assert watch.view_hw == (544, 960)  # 3/4 of the zoomed pass: 1.5 times the frame here
    # 640 / 32 = 20 px of new picture between looks: every 5 frames at 4 px a frame (the shift
    # measured on the 64 px thumbnail is good to a fraction of its pixels: 10 frame px here)
    assert 4 <= len(due_at) <= 7 and all(4 <= b - a <= 7 for a, b in zip(due_at, due_at[1:], strict=False))
    assert still_due == []


def test_a_still_camera_s_noise_and_jitter_make_no_edge_due():
    rng = np.random.default_rng(1)
    picture, watch, due = panorama(), EdgeWatch(), []
    for _ in range(300):
        x0 = 100 + int(rng.integers(-3, 4))  # a hand-held camera's jitter, +-3 px
        noise = rng.normal(0, 6, (*FRAME_HW, 3))
        frame = np.clip(view(picture, x0) + noise, 0, 255).astype(np.uint8)
        due += watch.due(thumb(frame), FRAME_HW, (736, 1280), 224)
    assert due == []


def test_the_watch_is_a_stream_s_in_anonymize_only_and_a_cut_forgets_what_came_in():
    finder = FaceFinder(ColourKeyedSegmenter(), watch_edges=True)
    assert finder.edge_watch is not None
    finder.follow_mode("blur")
    assert finder.edge_watch is None
    finder.follow_mode("anonymize")
    assert finder.edge_watch is not None
    assert FaceFinder(ColourKeyedSegmenter(), watch_edges=True, photo=True).edge_watch is None
    photo = FaceFinder(ColourKeyedSegmenter(), photo=True)
    photo.follow_mode("anonymize")
    assert photo.edge_watch is None

    picture = panorama()
    for i in range(4):
        finder.process(view(picture, 4 * i), i)
    assert finder.edge_watch._new[RIGHT] > 0  # a pan has brought picture in
    finder.process(np.full((*FRAME_HW, 3), 250, np.uint8), 4)  # a cut (a white frame)
    assert finder.edge_watch._new == [0.0] * 4


def test_a_face_panning_in_at_the_edge_is_found_soon_after_it_is_in_view_without_a_full_pass():
    picture = panorama(face_x=1000)

    def first_found(watch_edges: bool) -> int | None:
        finder = FaceFinder(
            ColourKeyedSegmenter(), smoothing=0, find_every=1000, fine_every=1000, watch_edges=watch_edges
        )
        for i in range(70):
            result = finder.process(view(picture, 8 * i), i)  # the face's x in the frame: 1000 - 8 i
            if any(f.x0 <= 1000 - 8 * i <= f.x1 for f in result.faces):
                return i
        return None

    # whole in view from frame 48 (x = 616, its right side at the frame's edge)
    assert first_found(True) is not None and first_found(True) <= 51
    assert first_found(False) is None  # without the watch, not until the next full pass


def test_the_leak_count_links_a_face_from_frame_to_frame_and_counts_its_uncovered_runs():
    from facecam.scripts.anonymize_leaks import LeakBook, inner_covered

    book = LeakBook()
    covered_pattern = [True, False, False, False, True, False, True]  # one run of 3, one of 1
    for i, covered in enumerate(covered_pattern):
        book.add(i, [100 + 2 * i, 50, 160 + 2 * i, 120], covered)  # one face, moving right
        book.add(i, [400, 50, 440, 100], True)  # another, always covered
    report = book.report()
    assert report["face_frames"] == 14 and report["covered"] == 10
    assert report["faces_leaking_3_frames"] == 1 and report["longest_leaks"] == [3]
    half = np.zeros((200, 200), bool)
    half[:, :100] = True
    assert abs(inner_covered(half, [70, 70, 130, 130]) - 0.5) < 0.1


def test_the_finder_moves_a_held_face_s_second_place_with_a_panning_picture():
    picture = panorama()
    finder = FaceFinder(ColourKeyedSegmenter(), smoothing=0, fps=10, memory_seconds=2, watch_edges=True)
    finder.process(view(picture, 100), 0)
    finder.tracker.hold(Box(280, 160, 320, 200), 0)  # a face lost here at frame 0
    for i in range(1, 6):
        finder.process(view(picture, 100 + 6 * i), i)  # the picture moves 6 px left a frame
    (held,) = finder.tracker.held
    stays, moves = held.boxes
    assert stays.center == (300, 180)
    assert abs(moves.center[0] - (300 - 30)) < 6 and abs(moves.center[1] - 180) < 3

"""The alpha inside the faces' box, and drawing from it: the same values and pictures as the
plain whole-frame computations, without frame-sized arrays (the pipeline's path)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pictures import textured, whole_frame_upsample

from facecam.realtime import processing
from facecam.realtime.drawing import _blend, alpha_box, blend_into


def test_blending_the_face_box_equals_blending_everything():
    frame, other = textured(360, 640, 1), textured(360, 640, 2)
    alpha = np.zeros((360, 640), np.float32)
    cv2.circle(alpha, (500, 100), 40, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 4)
    box = alpha_box(alpha)
    assert box is not None and box[1].start < 460 and box[1].stop > 540
    float_blend = cv2.blendLinear(frame, other, alpha, 1 - alpha)
    assert np.abs(_blend(frame, other, alpha[box], box).astype(int) - float_blend).max() <= 1  # 8-bit fixed point
    assert alpha_box(np.zeros((360, 640), np.float32)) is None
    np.testing.assert_array_equal(_blend(frame, other, None, None), other)


def test_the_blend_writes_into_a_view_of_the_output_and_nowhere_else():
    frame, other = textured(360, 640, 1), textured(360, 640, 2)
    alpha = np.zeros((360, 640), np.float32)
    cv2.circle(alpha, (300, 180), 60, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 4)
    out, box = other.copy(), (slice(90, 270), slice(200, 400))
    blend_into(frame[box], out[box], alpha[box])  # a view with the frame's row stride
    float_blend = cv2.blendLinear(frame[box], other[box], alpha[box], 1 - alpha[box])
    assert np.abs(out[box].astype(int) - float_blend).max() <= 1
    assert out[box].mean() != other[box].mean()  # written in place, not into a copy
    outside = np.ones((360, 640), bool)
    outside[box] = False
    np.testing.assert_array_equal(out[outside], other[outside])


def test_the_face_box_holds_even_a_tiny_face_in_a_4k_frame():
    alpha = np.zeros((2160, 3840), np.float32)
    alpha[100:114, 1000:1014] = 1.0  # between any coarse sampling grid's points
    box = alpha_box(alpha)
    assert box == (slice(100, 114), slice(1000, 1014))
    frame, other = textured(2160, 3840, 5), textured(2160, 3840, 6)
    np.testing.assert_array_equal(_blend(frame, other, alpha[box], box)[100:114, 1000:1014], frame[100:114, 1000:1014])


@pytest.mark.parametrize("mode", ["blur", "overlay", "replace", "anonymize", "mask"])
def test_the_box_known_from_the_grid_holds_every_face_pixel_and_draws_what_measuring_draws(mode):
    from facecam.realtime.compose import ComposeSettings, face_alpha_and_box, face_alpha_in_box
    from facecam.realtime.crops import Box
    from facecam.realtime.drawing import draw, draw_in_box
    from facecam.realtime.tracking import HeldFace

    frame = textured(720, 1280, 3)
    mask = np.zeros((144, 256), np.float32)
    cv2.ellipse(mask, (90, 70), (20, 28), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.5)
    faces, held = [Box(350, 200, 550, 500)], [HeldFace(Box(1000, 100, 1100, 220), 3)]
    settings = ComposeSettings(mode=mode, anonymize_margin=0.3)
    alpha, box = face_alpha_and_box(frame, mask, mode, faces, held, settings)
    # the same filter over the whole frame, with no box at all, is 0 outside the box too
    from facecam.realtime.compose import mode_mask

    grid = mode_mask(mask, mode, frame.shape[:2], faces, held, settings)
    level = processing.Halvings(frame).level(processing.alpha_level(frame.shape[:2]))
    whole = cv2.resize(whole_frame_upsample(grid, level), (1280, 720), interpolation=cv2.INTER_LINEAR)
    outside = whole.copy()
    outside[box] = 0
    assert alpha[box].any() and outside.max() == 0
    if mode == "anonymize":  # the held face's ellipse, away from the mask, is inside the box too
        assert box[1].stop > 1050 and alpha[160, 1050] > 0.5
    drawn = draw(frame, alpha, settings, box=box)
    np.testing.assert_array_equal(drawn, draw(frame, alpha, settings))
    # the pipeline's way, with no frame-sized alpha: the same values, the same picture
    part, part_box = face_alpha_in_box(frame, mask, mode, faces, held, settings)
    assert part_box == box
    np.testing.assert_array_equal(part, alpha[box])
    np.testing.assert_array_equal(draw_in_box(frame, part, box, settings), drawn)
    empty, none = face_alpha_and_box(frame, np.zeros((144, 256), np.float32), "blur")
    assert none is None and not empty.any()
    assert face_alpha_in_box(frame, np.zeros((144, 256), np.float32), "blur") == (None, None)
    np.testing.assert_array_equal(draw_in_box(frame, None, None, settings), draw(frame, empty, settings))


@pytest.mark.parametrize(("height", "width", "sigma"), [(720, 1280, 8), (1080, 1920, 8), (481, 643, 5), (97, 131, 16)])
def test_the_blur_weight_read_in_the_box_is_what_resizing_the_whole_alpha_gives(height, width, sigma):
    from facecam.realtime.drawing import _at_small_centres

    rng = np.random.default_rng(height)
    alpha = np.zeros((height, width), np.float32)
    y0, x0 = height // 5, width // 3
    alpha[y0 : height - 3, x0 : x0 + width // 3] = rng.random((height - 3 - y0, width // 3), dtype=np.float32)
    box = alpha_box(alpha)
    small = (width // sigma, height // sigma)
    want = cv2.resize(alpha, small, interpolation=cv2.INTER_NEAREST_EXACT)
    np.testing.assert_array_equal(_at_small_centres(alpha[box], box, (height, width), small), want)
    assert not _at_small_centres(None, None, (height, width), small).any()


def test_flicker_measured_in_the_face_box_equals_flicker_of_the_whole_mask():
    from facecam.realtime.smoothing import FlickerMeter

    rng = np.random.default_rng(0)
    whole, boxed = FlickerMeter(), FlickerMeter()
    for frame in range(30):
        mask = np.zeros((120, 200), np.float32)
        if frame % 7 != 3:  # now and then no face at all
            cv2.circle(mask, (int(rng.integers(30, 170)), int(rng.integers(30, 90))), int(rng.integers(5, 25)), 1.0, -1)
        box = processing.support_box(mask, 0)
        whole.add(mask)
        boxed.add(mask, processing.box_slices(box))
    assert whole.value > 0.1
    assert boxed.value == pytest.approx(whole.value, abs=1e-12)


def test_zeros_outside_the_box_only():
    from facecam.realtime.processing import zeros_outside

    out = zeros_outside((40, 60), (10, 30, 5, 50))
    out[10:30, 5:50] = 7.0  # the caller writes the box
    want = np.zeros((40, 60), np.float32)
    want[10:30, 5:50] = 7.0
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(zeros_outside((4, 6), None), np.zeros((4, 6), np.float32))


@pytest.mark.parametrize(("height", "width"), [(360, 640), (481, 643), (720, 1280), (1080, 1920)])
@pytest.mark.parametrize("mode", ["blur", "mask", "overlay"])
def test_the_alpha_in_its_box_is_the_whole_alphas_box_at_every_frame_size(height, width, mode):
    # under 1280 px the alpha is filtered at the frame's own size, from 1280 px at a halving
    from facecam.realtime.compose import ComposeSettings, face_alpha_and_box, face_alpha_in_box
    from facecam.realtime.drawing import draw, draw_in_box
    from facecam.realtime.passes import grid_shape

    frame = textured(height, width, 4)
    (gh, gw), _ = grid_shape((height, width))
    mask = np.zeros((gh, gw), np.float32)
    cv2.ellipse(mask, (gw - 20, gh // 2), (gw // 8, gh // 4), 0, 0, 360, 1.0, -1)  # near the right edge
    mask = cv2.GaussianBlur(mask, (0, 0), 1.5)
    alpha, box = face_alpha_and_box(frame, mask, mode)
    part, part_box = face_alpha_in_box(frame, mask, mode)
    assert part_box == box and part.shape == alpha[box].shape
    np.testing.assert_array_equal(part, alpha[box])
    outside = alpha.copy()
    outside[box] = 0
    assert not outside.any()
    settings = ComposeSettings(mode=mode)
    np.testing.assert_array_equal(draw_in_box(frame, part, box, settings), draw(frame, alpha, settings))


def test_the_guide_coefficients_of_the_faces_window_are_the_whole_grids():
    from facecam.realtime.processing import GUIDE_RADIUS, SNAP, _guide_coefficients, support_box

    rng = np.random.default_rng(7)
    for trial in range(20):
        mask = np.zeros((144, 256), np.float32)
        cx, cy = int(rng.integers(0, 256)), int(rng.integers(0, 144))  # faces at the grid's edges too
        cv2.circle(mask, (cx, cy), int(rng.integers(3, 40)), 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), float(rng.uniform(0.5, 3)))
        gray = cv2.GaussianBlur(rng.integers(0, 255, (144, 256), dtype=np.uint8), (0, 0), 1)
        a, b = _guide_coefficients(mask, gray)
        # the whole grid's, computed plainly
        guide = gray.astype(np.float32) / 255
        k = (2 * GUIDE_RADIUS + 1,) * 2
        mean_i, mean_p = cv2.blur(guide, k), cv2.blur(mask, k)
        a_all = (cv2.blur(guide * mask, k) - mean_i * mean_p) / (
            cv2.blur(guide * guide, k) - mean_i * mean_i + processing.GUIDE_EPS
        )
        b_all = mean_p - a_all * mean_i
        scale = 1 / (1 - 2 * SNAP)
        a_all, b_all = cv2.blur(a_all, k) * (scale / 255), cv2.blur(b_all, k) * scale - SNAP * scale
        y0, y1, x0, x1 = support_box(mask, 2 * GUIDE_RADIUS + 2)  # where the alpha can be above 0
        # equal but for the rounding of the box blurs' sums, which start elsewhere: under 1e-4 of
        # the alpha (a * gray + b, gray up to 255)
        assert 255 * np.abs(a - a_all)[y0:y1, x0:x1].max() + np.abs(b - b_all)[y0:y1, x0:x1].max() < 1e-4, trial
        assert 255 * np.abs(a - a_all).max() + np.abs(b - b_all).max() < 1e-4, trial  # elsewhere: residues


def test_the_pipelines_steps_draw_what_process_draws_frame_after_frame(clip):
    # alpha_in_box + draw_in_box (the pipeline's) against process (the library's), with the edge
    # hold carried from frame to frame in both
    from facecam.api import FaceStream, video_frames

    frames = list(video_frames(clip))[:12]
    with FaceStream(mode="blur", provider="cpu") as library, FaceStream(mode="blur", provider="cpu") as stepwise:
        for index, frame in enumerate(frames):
            want = library.process(frame)
            found = stepwise.find(frame, index)
            part, box = stepwise.alpha_in_box(frame, found)
            np.testing.assert_array_equal(stepwise.draw_in_box(frame, part, box, found=found), want.image)
            whole = np.zeros(frame.shape[:2], np.float32)
            if box is not None:
                whole[box] = part
            np.testing.assert_array_equal(whole, want.mask)

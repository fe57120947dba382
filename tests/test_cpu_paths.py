"""The CPU-saving paths give what the plain computations give: the face box instead of the
whole frame, halvings instead of one area resize, and the model's last look reused for a
still face (and only for a still one)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pictures import textured, whole_frame_upsample

from facecam.face import face_probability
from facecam.realtime import faces, processing, reuse
from facecam.realtime.crops import Crop, crop_pixels


@pytest.mark.parametrize(
    ("height", "width", "grid"), [(720, 1280, (144, 256)), (1080, 1920, (144, 256)), (300, 400, (192, 256))]
)
def test_upsampling_only_the_face_box_equals_the_whole_frame(height, width, grid):
    frame = textured(height, width)
    mask = np.zeros(grid, np.float32)
    cv2.ellipse(mask, (grid[1] // 3, grid[0] // 2), (grid[1] // 8, grid[0] // 5), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.5)
    got, want = processing.upsample_mask(mask, frame), whole_frame_upsample(mask, frame)
    count = processing.alpha_level((height, width))
    if count:  # filtered at a halving (see processing.ALPHA_SIDE), then resized
        level = processing.Halvings(frame).level(count)
        want = cv2.resize(whole_frame_upsample(mask, level), (width, height), interpolation=cv2.INTER_LINEAR)
    assert got.shape == (height, width)
    assert np.abs(got - want).max() < 1e-4  # the box is resized on its own, sampled where the whole is
    assert want[got == 0].max() < 0.02  # nothing of the face is lost outside the box
    assert not processing.upsample_mask(np.zeros(grid, np.float32), frame).any()


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_halvings_are_an_area_average(factor):
    image = textured(256, 512, 3)
    size = (512 // factor, 256 // factor)
    want = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    got = processing.shrink(image, size)
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 2
    uneven = (size[0] * 4 // 5, size[1] * 4 // 5)  # grey before the last, uneven area resize
    gray = processing.Halvings(image).shrunk_gray(uneven)
    want_gray = cv2.cvtColor(processing.shrink(image, uneven), cv2.COLOR_BGR2GRAY)
    assert np.abs(gray.astype(int) - want_gray).max() <= 1


def test_a_big_crop_is_cut_from_its_own_region():
    frame = textured(720, 1280, 4)
    for crop in (Crop(640, 360, 900), Crop(100, 650, 700), Crop(1250, 20, 1100)):
        whole = cv2.resize(frame, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        small = Crop((crop.cx + 0.5) / 4 - 0.5, (crop.cy + 0.5) / 4 - 0.5, crop.side / 4)
        want = cv2.warpAffine(whole, small.to_crop(224), (224, 224), borderMode=cv2.BORDER_REPLICATE)
        got = crop_pixels(frame, crop, 224)
        assert np.abs(got.astype(int) - want).mean() < 2  # past the frame the repeated edges differ a little
        shared = crop_pixels(frame, crop, 224, processing.Halvings(frame))  # the frame's own halvings
        assert np.abs(shared.astype(int) - want).mean() < 2


def face_frames(count: int, step: float) -> list[np.ndarray]:
    """A face-like frame moved ``step`` pixels to the right each frame."""
    import facecam

    first = next(iter(facecam.video_frames(facecam.SAMPLE_VIDEO)))
    return [
        cv2.warpAffine(
            first, np.float32([[1, 0, i * step], [0, 1, 0]]), first.shape[1::-1], borderMode=cv2.BORDER_REPLICATE
        )
        for i in range(count)
    ]


SETTLE = 4


def looks_at_the_face(frames, reuse: bool, **settings) -> int:
    """Frames, after the first SETTLE, in which the model looked at the largest face's crop."""
    from facecam.realtime.segmenter import Segmenter
    from facecam.realtime.verifier import open_verifier

    looked = 0
    with Segmenter(provider="cpu") as seg:
        finder = faces.FaceFinder(
            seg, reuse_still=reuse, verifier=open_verifier("facecam_verifier"), **{**settings, "find_every": 1000}
        )
        finder.fine_every = 1000
        for index, frame in enumerate(frames):
            finder.process(frame, index)
            face = max(finder.tracker.tracks, key=lambda t: t.crop.side)
            looked += index >= SETTLE and face.reused == 0
    return looked


def test_a_still_or_shifted_face_reuses_the_last_look_a_changing_one_does_not():
    still = face_frames(SETTLE + 9, 0.0)
    assert looks_at_the_face(still, reuse=False) == 9
    assert looks_at_the_face(still, reuse=True) == 9 // (reuse.STILL_REUSE + 1)  # one frame in three
    # a camera that pans: the face moves 3 px a frame and is the same face, moved (the shift is
    # measured to about a pixel, so a sharp edge fails the check now and then: not every reuse)
    panned = face_frames(SETTLE + 9, 3.0)
    assert 9 // (reuse.STILL_REUSE + 1) <= looks_at_the_face(panned, reuse=True) <= 6
    # the same pan with the face's light changing (a mouth opening would do): looked at every frame
    changing = [cv2.convertScaleAbs(frame, alpha=1.0, beta=12.0 * (i % 2)) for i, frame in enumerate(panned)]
    assert looks_at_the_face(changing, reuse=True) == 9


def test_anonymize_reuses_a_look_longer_and_through_larger_changes():
    from facecam.realtime.passes import finder_settings

    anonymize = finder_settings("anonymize")
    still = face_frames(SETTLE + 10, 0.0)
    assert looks_at_the_face(still, reuse=True, **anonymize) == 10 // (reuse.ANONYMIZE_STILL_REUSE + 1)  # one in five
    # light changing by 8 grey levels: a new look every frame elsewhere, reused in anonymize
    flicker = [cv2.convertScaleAbs(frame, alpha=1.0, beta=8.0 * (i % 2)) for i, frame in enumerate(still)]
    assert looks_at_the_face(flicker, reuse=True, **finder_settings("blur")) == 10
    assert looks_at_the_face(flicker, reuse=True, **anonymize) == 10 // (reuse.ANONYMIZE_STILL_REUSE + 1)
    # and by 24: looked at every frame in anonymize too
    changing = [cv2.convertScaleAbs(frame, alpha=1.0, beta=24.0 * (i % 2)) for i, frame in enumerate(still)]
    assert looks_at_the_face(changing, reuse=True, **anonymize) == 10


def test_a_look_moved_by_a_shift_lands_where_the_face_now_is():
    from facecam.realtime.crops import blob_box

    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (160, 160)).astype(np.float32), (0, 0), 4)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    probability = np.zeros((160, 160), np.float32)
    cv2.ellipse(probability, (80, 80), (30, 40), 0, 0, 360, 1.0, -1)
    crop = Crop(500.0, 300.0, 160.0)  # 1 frame pixel per crop pixel
    shifted = cv2.warpAffine(texture, np.float32([[1, 0, 5], [0, 1, -3]]), (160, 160), borderMode=cv2.BORDER_REPLICATE)
    moved = reuse.moved_look(crop, texture, probability, crop, shifted)
    assert moved is not None
    x0, y0, x1, y1 = blob_box(moved, 0.5)
    assert abs((x0 + x1) / 2 - 85) <= 1.5 and abs((y0 + y1) / 2 - 77) <= 1.5
    # the crop followed the face (5 px right, 3 up), so it shows what it showed: the look lands
    # at the crop's centre again
    followed = reuse.moved_look(crop, texture, probability, Crop(505.0, 297.0, 160.0), texture)
    x0, y0, x1, y1 = blob_box(followed, 0.5)
    assert abs((x0 + x1) / 2 - 80) <= 1.5 and abs((y0 + y1) / 2 - 80) <= 1.5
    # something new in one block of the crop (a hand): no reuse
    handed = shifted.copy()
    handed[20:50, 20:50] = 255
    assert reuse.moved_look(crop, texture, probability, crop, handed) is None


def test_the_cpu_graph_without_its_final_resize_gives_the_models_own_probability(tmp_path, int8_exact):
    import onnx
    import onnxruntime as ort

    from facecam.realtime.final_resize import graph_without_final_resize
    from facecam.realtime.providers import session_options
    from facecam.realtime.segmenter import Segmenter

    with Segmenter(provider="cpu") as cut:
        # the shipped model and its INT8 twin (the face crops) end in a bilinear resize: it is taken off
        assert cut._resize_logits and cut._crop_resize_logits and cut.crop_path != cut.path
        assert cut.finder is None or cut.finder._resize_logits  # and the finder's, for the whole-frame passes
        rng = np.random.default_rng(1)
        for path, run in (
            ((cut.finder or cut).path, lambda x: np.stack([cut.infer(x[i : i + 1]) for i in range(len(x))])),
            (cut.crop_path, cut.infer_batch),
        ):
            whole = ort.InferenceSession(str(path), session_options(1), providers=["CPUExecutionProvider"])
            for height, width in ((224, 224), (128, 224), (96, 96)):
                pixels = (rng.random((2, 3, height, width)) * 255).astype(np.float32)
                want = face_probability(whole.run(None, {cut.input_name: pixels})[0], cut.card.face_classes)
                assert np.abs(run(pixels) - want).max() < 1e-5
        # a model whose last step is not a resize keeps its whole graph
        model = onnx.load(str(cut.path))
        last = next(n for n in model.graph.node if model.graph.output[0].name in n.output)
        last.op_type, last.domain = "Identity", ""
        del last.input[1:], last.attribute[:]
        other = tmp_path / "identity_last.onnx"
        onnx.save(model, str(other))
        assert graph_without_final_resize(other) is None


def test_halvings_of_another_frame_are_not_used():
    from facecam.realtime.compose import ComposeSettings, face_alpha_and_box
    from facecam.realtime.drawing import draw

    frame, other = textured(120, 160, 5), textured(120, 160, 6)
    mask = np.zeros((48, 64), np.float32)
    mask[10:30, 20:40] = 1
    settings = ComposeSettings(mode="blur")
    wrong = processing.Halvings(other)  # what step 1 found in another frame, passed by mistake
    alpha = face_alpha_and_box(frame, mask, "blur", levels=wrong)[0]
    np.testing.assert_array_equal(alpha, face_alpha_and_box(frame, mask, "blur")[0])
    np.testing.assert_array_equal(draw(frame, alpha, settings, levels=wrong), draw(frame, alpha, settings))


def test_a_streams_large_crop_is_segmented_smaller_a_photos_is_not():
    from facecam.realtime.passes import LARGE_CROP_INPUT, LARGE_CROP_SHRINK, crop_input_side

    large = LARGE_CROP_SHRINK * LARGE_CROP_INPUT  # a webcam face's crop at 720p is larger still
    assert crop_input_side(1250, 224, stream=True) == LARGE_CROP_INPUT
    assert crop_input_side(large, 224, stream=True) == LARGE_CROP_INPUT
    assert crop_input_side(1250, 224) == 224  # a photo's
    # below the threshold a stream's crop gets what a photo's gets (a medium face keeps its detail)
    for side in (40, 120, 250, large - 1):
        assert crop_input_side(side, 224, stream=True) == crop_input_side(side, 224)
    assert crop_input_side(large - 1, 224) == 224


def test_a_large_frames_alpha_filtered_at_its_halving_puts_the_edge_where_the_full_size_filter_does():
    # a dark disc on a light ground: the edge the guided filter snaps to
    frame = np.full((720, 1280, 3), 200, np.uint8)
    cv2.circle(frame, (500, 300), 150, (60, 50, 40), -1, lineType=cv2.LINE_AA)
    frame = cv2.add(frame, textured(720, 1280, 5) // 16)
    mask = np.zeros((144, 256), np.float32)
    cv2.circle(mask, (100, 60), 31, 1.0, -1)  # the model's blob, a little off the true edge
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0)
    assert processing.alpha_level((720, 1280)) == 1 and processing.alpha_level((360, 640)) == 0
    halved = processing.upsample_mask(mask, frame) >= 0.5
    full = processing._guided_upsample(mask, frame, processing.Halvings(frame)) >= 0.5
    disc = np.zeros((720, 1280), np.uint8)
    cv2.circle(disc, (500, 300), 150, 1, -1)
    # they differ by under a pixel's ring around the edge, and the halving's is as close to the disc
    ring = 2 * np.pi * 150
    assert np.count_nonzero(halved != full) < ring
    assert np.count_nonzero(halved != disc.astype(bool)) <= np.count_nonzero(full != disc.astype(bool)) + ring / 2


def test_a_crop_hovering_at_the_large_size_keeps_one_input_size():
    from facecam.realtime.passes import LARGE_CROP_INPUT, LARGE_CROP_SHRINK, crop_input_side, is_large_crop

    threshold = LARGE_CROP_SHRINK * LARGE_CROP_INPUT
    sides, was_large, inputs = [threshold + d for d in (5, -5, 8, -8, 4, -30)], False, []
    for side in sides:
        inputs.append(crop_input_side(side, 224, stream=True, was_large=was_large))
        was_large = is_large_crop(side, was_large)
    assert inputs == [LARGE_CROP_INPUT] * len(sides)  # once large, a few pixels less do not flip it
    assert crop_input_side(threshold * 0.8, 224, stream=True, was_large=True) == 224  # a real shrink does
    assert crop_input_side(threshold - 5, 224, stream=True) == 224  # never large: the plain threshold


def held_edges_by_index(mask, previous, still, band, scale=(1.0, 1.0), origin=(0, 0)):
    """The edge hold as it was first written: the band's pixels looked at one by one."""
    points = cv2.findNonZero(cv2.inRange(mask, 0.5 - band, 0.5 + band))
    if points is None:
        return mask
    xs, ys = points.reshape(-1, 2).T
    now, before = mask[ys, xs], previous[ys, xs]
    sx = np.minimum(((xs + origin[0] + 0.5) * scale[0]).astype(np.intp), still.shape[1] - 1)
    sy = np.minimum(((ys + origin[1] + 0.5) * scale[1]).astype(np.intp), still.shape[0] - 1)
    held = still[sy, sx] & ((now >= 0.5) != (before >= 0.5)) & (now < 0.5 + band)
    mask = mask.copy()
    mask[ys[held], xs[held]] = before[held]
    return mask


def test_the_edge_hold_in_whole_array_passes_equals_the_hold_pixel_by_pixel():
    from facecam.realtime.smoothing import held_edges

    rng = np.random.default_rng(1)
    for case in range(60):
        h, w = (int(v) for v in rng.integers(20, 300, 2))
        blobs = (rng.random((h // 8 + 2, w // 8 + 2)) > 0.5).astype(np.float32)
        mask = cv2.resize(cv2.GaussianBlur(blobs, (0, 0), 1), (w, h))
        previous = np.clip(mask + rng.normal(0, 0.1, mask.shape), 0, 1).astype(np.float32)
        still = rng.random((int(rng.integers(5, 60)), int(rng.integers(5, 60)))) > 0.4
        scale = (still.shape[1] / (w + 50), still.shape[0] / (h + 30))
        origin = (int(rng.integers(0, 50)), int(rng.integers(0, 30)))
        want = held_edges_by_index(mask, previous, still, 0.2, scale, origin)
        assert not np.array_equal(want, mask) or case % 7  # most cases hold something
        np.testing.assert_array_equal(held_edges(mask, previous, still, 0.2, scale, origin), want)


def test_a_720p_streams_edge_hold_works_at_the_halving_and_holds_a_still_edge():
    from facecam.api import FaceStream
    from facecam.realtime.crops import Box
    from facecam.realtime.faces import FrameFaces
    from facecam.realtime.smoothing import faces_region

    assert faces_region([Box(400, 200, 600, 500)], (720, 1280), 1.0, image_hw=(360, 640)) == (200, 100, 300, 250)
    frame = textured(720, 1280, 4)
    grid = np.zeros((144, 256), np.float32)
    cv2.ellipse(grid, (100, 70), (22, 30), 0, 0, 360, 1.0, -1)
    grid = cv2.GaussianBlur(grid, (0, 0), 2.0)
    noisy = np.clip(grid + np.random.default_rng(2).normal(0, 0.03, grid.shape), 0, 1).astype(np.float32)
    faces = [Box(380, 180, 620, 520)]
    still = np.ones((144, 256), bool)
    flips = {}
    for smoothing in (0.6, 0.0):  # the hold's band grows with the smoothing; 0 turns it off
        with FaceStream(mode="blur", smoothing=smoothing) as stream:
            seen = []
            for mask in (grid, noisy):  # the same still picture, the model's edge jittering
                found = FrameFaces(mask, faces, [], processing.Halvings(frame), still)
                seen.append(stream.alpha_and_box(frame, found)[0] >= 0.5)
        flips[smoothing] = np.count_nonzero(seen[1] != seen[0])
    # held at the halving, fewer edge pixels of the full-size alpha flip than without the hold
    assert 0 < flips[0.6] < flips[0.0] * 0.97, flips

"""Pure pieces of the runtime: model card, sizes and tensors, smoothing, flicker, compose, providers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facecam.errors import FacecamError
from facecam.face import face_probability
from facecam.model_card import ModelCard
from facecam.realtime import processing
from facecam.realtime.compose import MODES, ComposeSettings, compose, parse_background
from facecam.realtime.drawing import alpha_box, halo_free_blur
from facecam.realtime.providers import PROVIDERS, candidate_providers
from facecam.realtime.smoothing import FlickerMeter, TemporalSmoother

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_model_card_round_trips_through_metadata():
    card = ModelCard(
        input_size=(192, 160),
        class_names=("bg", "skin", "hair", "nose"),
        face_classes=(1, 3),
        metrics={"val_iou": 0.9},
        model_name="x",
        epochs=3,
    )
    meta = card.to_metadata()
    assert all(k.startswith("facecam.") for k in meta)
    assert ModelCard.from_metadata(meta) == card


@pytest.mark.parametrize(
    "props, fragment",
    [
        ({}, "no facecam model card"),
        ({"facecam.card_version": "99"}, "newer"),
        ({"facecam.card_version": "1", "facecam.color_order": '"YUV"'}, "color_order"),
        ({"facecam.card_version": "1", "facecam.face_classes": "[7]"}, "face_classes"),
        ({"facecam.card_version": "{"}, "not valid JSON"),
    ],
)
def test_model_card_rejects_bad_metadata(props, fragment):
    with pytest.raises(FacecamError, match=fragment):
        ModelCard.from_metadata(props)


def test_inference_size_keeps_aspect_in_multiples_of_32():
    card = ModelCard(input_size=(256, 256))
    assert processing.inference_size((512, 512), card) == (256, 256)
    assert processing.inference_size((1280, 720), card) == (256, 160)
    assert processing.inference_size((480, 640), card) == (192, 256)
    assert processing.inference_size((480, 640), ModelCard(input_size=(96, 128), dynamic_size=False)) == (96, 128)


def test_preprocess_shape_dtype_and_colour_order():
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR
    raw = processing.preprocess(frame, (32, 64), ModelCard(normalization_in_graph=True))
    assert raw.shape == (1, 3, 32, 64) and raw.dtype == np.float32 and raw.flags.c_contiguous
    assert raw[0, 2].min() == 255 and raw[0, 0].max() == 0  # RGB: blue is the last channel
    bgr = processing.preprocess(frame, (32, 64), ModelCard(color_order="BGR", mean=(0, 0, 0), std=(1, 1, 1)))
    assert bgr[0, 0].min() == pytest.approx(1.0)  # normalised to 0..1, blue first


def test_face_probabilities_sum_face_classes_softmax():
    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 1, 0, 0] = 10
    p = face_probability(logits, (1,))[0]
    assert p.shape == (2, 2) and p.dtype == np.float32
    assert p[0, 0] > 0.99 and p[1, 1] == pytest.approx(1 / 3)
    assert face_probability(logits, (0, 1, 2))[0] == pytest.approx(np.ones((2, 2)))


def test_one_face_class_probability_is_numpys_softmax_even_for_extreme_logits():
    logits = (np.random.default_rng(0).standard_normal((3, 3, 16, 16)) * 30).astype(np.float32)
    logits[0, 0, 0, 0], logits[0, 1, 0, 0] = 200.0, -200.0  # exp overflows: probability 0, not NaN
    e = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    want = e[:, 1] / e.sum(axis=1)
    got = face_probability(logits, (1,))
    assert got.dtype == np.float32 and np.abs(got - want).max() < 1e-6 and got[0, 0, 0] == 0.0


def test_upsample_mask_snaps_to_image_edge():
    frame = np.zeros((128, 128, 3), np.uint8)
    frame[:, 61:] = 255  # a sharp edge at x = 61, not on the low-res grid
    low = np.zeros((16, 16), np.float32)
    low[:, 8:] = 1.0
    edge_aware = processing.upsample_mask(low, frame)
    bilinear = cv2.resize(low, (128, 128), interpolation=cv2.INTER_LINEAR)
    assert edge_aware.shape == (128, 128) and edge_aware.dtype == np.float32
    truth = (frame[..., 0] > 0).astype(np.float32)
    assert np.abs(edge_aware - truth).mean() < 0.5 * np.abs(bilinear - truth).mean()


def test_smoothing_off_is_identity_and_still_scene_is_steady():
    gray = np.full((8, 8), 100, np.uint8)
    a, b = np.zeros((8, 8), np.float32), np.ones((8, 8), np.float32)
    off = TemporalSmoother(0.0)
    assert off.update(b, gray) is b
    on = TemporalSmoother(0.6)
    on.update(a, gray)
    assert on.update(b, gray) == pytest.approx(np.full((8, 8), 0.4))  # still: 60 % of the old mask kept


def test_smoothing_follows_motion_and_resets_on_scene_cut():
    s = TemporalSmoother(0.8, motion_scale=10, scene_cut=40)
    still, moved = np.full((8, 8), 100, np.uint8), np.full((8, 8), 100, np.uint8)
    moved[:, :4] = 160  # left half changed strongly, but the mean change (30) is below a cut
    s.update(np.zeros((8, 8), np.float32), still)
    out = s.update(np.ones((8, 8), np.float32), moved)
    assert out[:, :2] == pytest.approx(1.0)  # moving part follows at once
    assert out[:, 6:] == pytest.approx(0.2)  # still part is smoothed
    cut = s.update(np.zeros((8, 8), np.float32), np.full((8, 8), 250, np.uint8))
    assert cut.max() == 0  # a scene cut takes the new mask as it is
    s.reset()
    assert s.update(np.ones((8, 8), np.float32), still).min() == 1


def test_flicker_meter_known_answer():
    meter = FlickerMeter()
    m = np.zeros((10, 10), np.float32)
    m[:5] = 1
    m2 = m.copy()
    m2[5] = 1  # 10 of 100 pixels toggle
    for mask in (m, m2, m):
        meter.add(mask)
    area = np.mean([0.5, 0.6, 0.5])
    assert meter.value == pytest.approx(0.1 / area)


@pytest.mark.parametrize("mode", MODES)
def test_compose_modes_shape_and_effect(mode):
    frame = np.zeros((64, 80, 3), np.uint8)
    frame[:] = np.linspace(40, 120, 80, dtype=np.uint8)[None, :, None]  # a smooth backdrop
    frame[16:48, 20:60] = (90, 140, 200)  # the face, where the mask says
    frame[28:36, 30:50] = (60, 100, 160)  # with some detail
    mask = np.zeros((16, 16), np.float32)
    mask[4:12, 4:12] = 1
    out = compose(frame, mask, ComposeSettings(mode=mode, background=(0, 0, 255)))
    assert out.shape == frame.shape and out.dtype == np.uint8
    centre, corner = (slice(26, 38), slice(30, 50)), (slice(0, 5), slice(0, 5))
    if mode == "mask":
        assert out[centre].min() > 200 and out[corner].max() < 30
    elif mode in ("overlay", "anonymize"):
        # the background as it was (within the 8-bit blend's rounding), the face changed
        assert np.abs(out[corner].astype(int) - frame[corner]).max() <= 1
        assert not np.array_equal(out[centre], frame[centre])
    else:  # blur, replace: face kept, background changed
        diff = np.abs(out[centre].astype(int) - frame[centre])
        assert diff.mean() < 1 and diff.max() <= 10
        assert not np.array_equal(out[corner], frame[corner])
    if mode == "replace":
        assert (out[corner] == (0, 0, 255)).all()


@pytest.mark.parametrize("sigma", [4, 8, 16, 30])
def test_blur_has_no_halo_of_face_colour(sigma):
    # the blur runs shrunk by sigma: a small pixel just outside the face averages face colour in
    # its footprint, and must not count as background
    frame = np.full((200, 200, 3), 100, np.uint8)
    face = np.zeros((200, 200), np.float32)
    face[60:140, 60:140] = 1
    frame[face > 0] = (0, 0, 255)  # a red face on grey
    naive = cv2.GaussianBlur(frame, (0, 0), sigma)
    ours = halo_free_blur(frame, face[alpha_box(face)], alpha_box(face), sigma)
    ring = (slice(52, 58), slice(80, 120))  # background just outside the face
    assert naive[ring][..., 2].mean() > 110  # plain blur bleeds red into the background
    excess_naive = naive[ring][..., 2].mean() - 100
    assert abs(ours[ring][..., 2].mean() - 100) < excess_naive / 10


def test_blur_under_a_face_that_fills_the_frame_is_the_plain_blur():
    # no background anywhere near: the normalised convolution would be 0/0 without its tiny
    # everywhere-weight; a mode switch or a soft alpha edge can show these pixels
    frame = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8), (0, 0), 2)
    whole = (slice(0, 120), slice(0, 160))
    ours = halo_free_blur(frame, np.ones((120, 160), np.float32), whole, 8)
    plain = cv2.GaussianBlur(frame, (0, 0), 8)
    assert np.abs(ours.astype(int) - plain).mean() < 2


def test_parse_background():
    assert parse_background("green") == (0, 177, 64)
    assert parse_background("#ff0000") == (0, 0, 255)
    with pytest.raises(FacecamError, match="neither an image"):
        parse_background("/nonexistent.png")


def test_provider_choice_is_predictable():
    assert candidate_providers("auto", ALL, driver=False) == [PROVIDERS["cpu"]]
    assert candidate_providers("auto", ALL, driver=True) == ALL
    assert candidate_providers("auto", ["CPUExecutionProvider"], driver=True) == ["CPUExecutionProvider"]
    assert candidate_providers("cuda", ALL, driver=True) == ["CUDAExecutionProvider"]
    with pytest.raises(FacecamError, match="needs an NVIDIA GPU"):
        candidate_providers("tensorrt", ALL, driver=False)
    with pytest.raises(FacecamError, match="not in this onnxruntime"):
        candidate_providers("cuda", ["CPUExecutionProvider"], driver=True)
    with pytest.raises(ValueError, match="valid: auto"):
        candidate_providers("gpu", ALL, driver=True)


def test_edge_hold_keeps_a_still_edge_pixel_on_its_side_and_follows_motion_at_once():
    from facecam.realtime.smoothing import EdgeHold

    hold = EdgeHold(0.2)
    gray = np.full((8, 8), 100, np.uint8)
    first = np.zeros((8, 8), np.float32)
    first[:, :4] = 1.0
    first[0, 4] = 0.6  # an edge pixel on the face side
    assert hold.update(first, gray) is first
    wobble = first.copy()
    wobble[0, 4] = 0.45  # model noise: just under one half on a still picture
    wobble[1, 5] = 0.55  # and a pixel that was out, just over
    held = hold.update(wobble, gray)
    assert held[0, 4] == pytest.approx(0.6) and held[1, 5] == 0.0  # each keeps its last value
    assert np.array_equal(held[2:], wobble[2:])  # nothing else touched
    far = held.copy()
    far[0, 4] = 0.2  # well past the band: the model means it
    assert hold.update(far, gray)[0, 4] == pytest.approx(0.2)
    moved = np.full((8, 8), 160, np.uint8)  # the picture changed: the new mask as it is
    follow = far.copy()
    follow[1, 5] = 0.55
    assert hold.update(follow, moved)[1, 5] == pytest.approx(0.55)
    hold.reset()
    assert hold.update(wobble, gray) is wobble
    off = EdgeHold(0.0)
    off.update(first, gray)
    assert off.update(wobble, gray) is wobble


def test_the_alpha_hold_holds_a_still_edge_inside_the_faces_region_only():
    from facecam.realtime.crops import Box
    from facecam.realtime.smoothing import AlphaHold, faces_region

    still = np.ones((20, 30), bool)  # the grid hold's stillness (half the frame's size): all still
    region = faces_region([Box(20, 10, 30, 20)], (40, 60))
    assert region == (19, 9, 31, 21)  # the face grown 1.1x
    assert faces_region([], (40, 60)) is None
    hold = AlphaHold(0.2)
    first = np.zeros((40, 60), np.float32)
    first[10:20, 20:30] = 1.0
    first[15, 30] = first[15, 5] = 0.6  # edge pixels: one beside the face, one far from it
    hold.update(first.copy(), None, region)
    wobble = first.copy()
    wobble[15, 30] = wobble[15, 5] = 0.45  # noise on a still picture
    held = hold.update(wobble.copy(), still, region)
    assert held[15, 30] == pytest.approx(0.6)  # held
    assert held[15, 5] == pytest.approx(0.45)  # outside the faces' region: as it came
    moved = still.copy()
    moved[5:13, 12:18] = False  # the head moved there (grid pixels 15 // 2, 30 // 2): as it is
    assert hold.update(wobble.copy(), moved, region)[15, 30] == pytest.approx(0.45)
    hold.update(first.copy(), still, region)
    assert hold.update(wobble.copy(), None, region)[15, 30] == pytest.approx(0.45)  # a cut: nothing still
    hold.update(first.copy(), still, region)
    assert hold.update(wobble.copy(), still, None)[15, 30] == pytest.approx(0.45)  # no face: nothing held
    assert hold.update(wobble.copy(), still, region)[15, 30] == pytest.approx(0.45)  # ... and forgotten
    moved_region = faces_region([Box(24, 12, 34, 22)], (40, 60))  # a region that moved: its overlap
    hold.reset()
    hold.update(first.copy(), still, region)
    assert hold.update(wobble.copy(), still, moved_region)[15, 30] == pytest.approx(0.6)


def test_the_grid_hold_tells_where_the_picture_stood_still():
    from facecam.realtime.smoothing import EdgeHold

    hold = EdgeHold(0.2)
    gray = np.full((8, 8), 100, np.uint8)
    mask = np.zeros((8, 8), np.float32)
    hold.update(mask, gray)
    assert hold.still is None  # nothing to compare with yet
    moved = gray.copy()
    moved[:, :3] = 200
    hold.update(mask, moved)
    assert hold.still[4, 7] and not hold.still[4, 0]
    hold.reset()
    assert hold.still is None


def test_a_stream_holds_its_alpha_and_a_photo_does_not():
    import facecam

    frame = next(iter(facecam.video_frames(facecam.SAMPLE_VIDEO)))
    with facecam.FaceStream(mode="mask", smoothing=0.6) as stream:
        stream.process(frame)
        region = stream.alpha_hold._region
        assert region is not None  # the stream's last face region is kept
        stream.process_photo(np.ascontiguousarray(frame[:, ::-1]))  # a photo, face elsewhere
        assert stream.alpha_hold._region == region  # the photo left the stream's hold alone
        stream.mode = "anonymize"
        stream.process(frame)
        assert stream.alpha_hold._region is None  # anonymize grows its faces: nothing held


def test_a_dark_model_input_is_lifted_and_an_ordinary_one_left_as_it_is():
    ordinary = np.random.default_rng(0).integers(60, 200, (64, 64, 3), dtype=np.uint8)
    assert processing.lifted_if_dark(ordinary) is ordinary
    dark = (ordinary * 0.3).astype(np.uint8)  # a dim room: it averages ~38 grey levels
    lifted = processing.lifted_if_dark(dark)
    assert abs(float(lifted[16:48, 16:48].mean()) - processing.DARK_TARGET) < 10
    order = np.argsort(dark[..., 1], axis=None, kind="stable")
    assert np.all(np.diff(lifted[..., 1].ravel()[order].astype(int)) >= 0)  # a gamma: order kept
    black = np.zeros((8, 8, 3), np.uint8)  # nothing to lift
    assert processing.lifted_if_dark(black) is black
    tensor = processing.preprocess(dark, (64, 64), ModelCard(color_order="BGR", normalization_in_graph=True))
    assert abs(float(tensor[0, :, 16:48, 16:48].mean()) - processing.DARK_TARGET) < 10  # the model sees it lifted


def test_a_mirror_averaged_look_is_the_mean_of_the_look_and_the_mirrored_look_in_one_run():
    runs = []

    def left_half_model(batch: np.ndarray) -> np.ndarray:  # paints the left half of whatever it sees
        runs.append(len(batch))
        out = np.zeros((len(batch), *batch.shape[2:]), np.float32)
        out[:, :, : batch.shape[3] // 2] = 1.0
        return out + batch[:, 0] / 1000  # and a trace of the picture, to see it comes back unmirrored

    batch = np.random.default_rng(0).random((3, 3, 8, 8)).astype(np.float32)
    looks = processing.mirror_averaged(left_half_model, batch)
    assert runs == [6]  # the crops and their mirror images in one run
    assert looks.shape == (3, 8, 8)
    np.testing.assert_allclose(looks, 0.5 + batch[:, 0] / 1000, atol=1e-6)


def test_a_photo_s_first_looks_are_mirror_averaged_and_a_stream_s_are_not():
    from test_faces import ColourKeyedSegmenter, scene

    from facecam.realtime.faces import FaceFinder

    seen = []

    class Recording(ColourKeyedSegmenter):
        def infer_first_looks(self, tensor):
            seen.append(tensor.copy())
            return super().infer_first_looks(tensor)

    for photo in (True, False):
        seen.clear()
        FaceFinder(Recording(), smoothing=0, find_every=1, photo=photo).process(scene([(300, 180, 60)]), 0)
        (batch,) = seen
        if photo:
            half = len(batch) // 2
            assert len(batch) == 2 and np.array_equal(batch[half:], batch[:half][..., ::-1])
        else:
            assert len(batch) == 1


def test_the_mosaic_block_grows_with_the_largest_face_in_octaves_and_holds_at_a_step():
    from facecam.realtime.drawing import FACE_BLOCKS, MosaicBlock, frame_block

    hw = (720, 1280)
    base = frame_block(hw)
    assert base == 18
    assert MosaicBlock().update(hw, []) == base  # no face: the frame's own blocks
    assert MosaicBlock().update(hw, [60, 90]) == base  # small faces: already few blocks across
    big = MosaicBlock().update(hw, [450, 60])  # a webcam face: about FACE_BLOCKS blocks across
    assert big == 2 * base and 450 / big <= 1.5 * FACE_BLOCKS
    hovering = MosaicBlock()
    step = base * 2**0.5 * FACE_BLOCKS  # the face size where the octave would round the other way
    blocks = {hovering.update(hw, [step * (1 + 0.05 * (-1) ** i)]) for i in range(20)}
    assert len(blocks) == 1  # a face hovering at a step keeps one block: the grid does not jump
    assert hovering.update(hw, [8 * base * FACE_BLOCKS]) == 8 * base  # a real change goes through


def block_runs(row: np.ndarray) -> np.ndarray:
    """Lengths of the runs of equal pixels along a ``(W, 3)`` row (the inner ones)."""
    ends = np.flatnonzero(np.abs(np.diff(row.astype(int), axis=0)).sum(axis=1) > 0)
    return np.diff(ends)


def test_anonymized_pixelates_in_blocks_of_the_size_asked():
    from facecam.realtime.drawing import anonymized, frame_block

    frame = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    for block in (None, 36):
        side = block or frame_block(frame.shape[:2])
        runs = block_runs(anonymized(frame, "pixelate", block)[100])
        assert abs(np.median(runs) - side) <= 0.1 * side + 1  # (the frame's side in whole blocks, stretched)


def test_a_big_face_is_anonymised_in_bigger_blocks_than_the_frame_s_and_other_modes_draw_as_before():
    import facecam
    from facecam.realtime.drawing import frame_block

    frame = next(iter(facecam.video_frames(facecam.SAMPLE_VIDEO)))
    frame = cv2.resize(frame, (frame.shape[1] * 2, frame.shape[0] * 2))  # a webcam-sized face
    with facecam.FaceStream(mode="anonymize") as stream:
        result = stream.process(frame)
        face = max(result.faces, key=lambda box: box.size)  # the astronaut's
        base = frame_block(frame.shape[:2])
        cx, cy = int((face.x0 + face.x1) / 2), int((face.y0 + face.y1) / 2)
        assert np.median(block_runs(result.image[cy, cx - 60 : cx + 60])) >= 1.8 * base
    with facecam.FaceStream(mode="blur") as stream:  # other modes: no mosaic at all
        assert stream.process(frame).image[cy, cx - 60 : cx + 60].tolist() == frame[cy, cx - 60 : cx + 60].tolist()

"""The small-face pass of a stream in tiles: one changed tile a frame, every tile again every few
passes (and every pass in anonymize), and nothing left over from before a cut or a new size."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from test_faces import SKIN_BGR, ColourKeyedSegmenter, scene

from facecam.model_card import ModelCard
from facecam.realtime import fine_scan
from facecam.realtime.faces import FaceFinder
from facecam.realtime.passes import finder_settings
from facecam.realtime.processing import Halvings, black_input, preprocess

ZOOMED_SIDE = 256  # the zoomed pass's long side: 640x360 at zoom 2 gives 1280 (more than a tile)


class Spy(ColourKeyedSegmenter):
    """Records the size of every look; ``blind`` for the looks at the zoomed pass's scale."""

    def __init__(self) -> None:
        super().__init__()
        self.looks: list[tuple[int, int]] = []
        self.blind = False

    def infer_batch(self, tensor: np.ndarray) -> np.ndarray:
        self.looks.append(tensor.shape[2:])
        probability = super().infer_batch(tensor)
        if self.blind and max(tensor.shape[2:]) >= ZOOMED_SIDE:
            probability[:] = 0  # the model misses what the zoomed pass shows it
        return probability


def small_face_stream(finder: FaceFinder, segmenter: Spy, frames: int, appear: int = 30) -> int | None:
    """The frame in which a small face that appears at ``appear`` beside a big one is found."""
    for index in range(frames):
        faces = [(320, 180, 80)] + ([(600, 330, 18)] if index >= appear else [])
        if len(finder.process(scene(faces), index).faces) == 2:
            return index
    return None


def test_tiles_cover_the_zoomed_pass_with_overlap():
    tiles = fine_scan.tile_grid((736, 1280))
    covered = np.zeros((736, 1280), int)
    for y0, y1, x0, x1 in tiles:
        assert (y1 - y0) % 32 == 0 and (x1 - x0) % 32 == 0 and max(y1 - y0, x1 - x0) <= fine_scan.TILE_SIDE
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    starts = fine_scan.tile_starts(1280)
    assert all(b - a <= fine_scan.TILE_SIDE - fine_scan.TILE_OVERLAP for a, b in zip(starts, starts[1:], strict=False))


def test_a_new_small_face_is_found_by_the_tiles_one_look_a_frame():
    segmenter = Spy()
    finder = FaceFinder(segmenter, smoothing=0, reuse_still=False)
    found = small_face_stream(finder, segmenter, finder.fine_every + 30)
    tiles = len(fine_scan.tile_grid((736, 1280)))
    assert found is not None and finder.fine_every <= found < finder.fine_every + tiles
    # the whole zoomed pass ran once, on the first frame; after it, at most one tile a frame
    assert sum(1 for shape in segmenter.looks if max(shape) >= 1280) == 1
    assert sum(1 for shape in segmenter.looks if fine_scan.TILE_SIDE <= max(shape) < 1280) <= tiles  # borders included


def test_a_face_missed_once_is_looked_for_again_every_few_passes_and_every_pass_in_anonymize():
    for mode, within in (("blur", fine_scan.REFRESH_PERIODS), ("anonymize", 1)):
        segmenter = Spy()
        segmenter.blind = True  # the first whole pass misses the small face; it then stands still
        finder = FaceFinder(segmenter, smoothing=0, reuse_still=False, **finder_settings(mode))
        found = None
        for index in range(within * finder.fine_every + 60):
            segmenter.blind = index == 0
            if len(finder.process(scene([(320, 180, 80), (600, 330, 18)]), index).faces) == 2:
                found = index
                break
        assert found is not None and found <= within * finder.fine_every + 40, (mode, found)


def test_a_new_frame_size_mid_scan_leaves_no_tile_of_the_old_size():
    finder = FaceFinder(Spy(), smoothing=0, fine_every=30, skip_unchanged_tiles=False)
    for index in range(finder.fine_every + 2):  # a tiled pass under way (two of its 15 tiles looked at)
        finder.process(scene([(320, 180, 80)]), index)
    assert finder.scan.busy
    for index in range(3):  # a call's video drops to a size with no zoomed pass at all
        finder.process(scene([(80, 45, 40)], size=(90, 160)), finder.fine_every + 2 + index)
    assert not finder.scan.busy


def test_halvings_asked_from_several_threads_are_made_once():
    frame = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)

    def ask(levels: Halvings, start: threading.Barrier) -> None:
        start.wait()
        levels.level(3)

    for _ in range(5):
        levels, start = Halvings(frame), threading.Barrier(4)
        threads = [threading.Thread(target=ask, args=(levels, start)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [levels.level(k).shape[:2] for k in range(4)] == [(1080, 1920), (540, 960), (270, 480), (135, 240)]


def full_frame_passes(finder: FaceFinder, frames: list, start: int = 0) -> list[int]:
    """The frames (numbered from ``start``) in which ``finder`` ran its full-frame pass."""
    ran: list[int] = []
    find = finder.find
    for index, frame in enumerate(frames, start):
        finder.find = lambda *args, index=index, **kwargs: ran.append(index) or find(*args, **kwargs)
        finder.process(frame, index)
    finder.find = find
    return ran


def test_the_full_frame_pass_is_passed_over_while_nothing_changes_outside_the_faces():
    finder = FaceFinder(Spy(), smoothing=0, find_every=6, fine_every=1000)
    still = [scene([(200, 180, 80)])] * 60
    ran = full_frame_passes(finder, still)
    # due every 6 frames: run at the start, then at every REFRESH_PERIODS-th due frame only
    assert ran[0] == 0 and len(ran) == 1 + (60 // 6) // fine_scan.REFRESH_PERIODS, ran
    assert len(finder.tracker.tracks) == 1
    # a new face outside the tracked one changes the picture: the next due pass runs and finds it
    both = [scene([(200, 180, 80), (480, 180, 80)])] * 12
    ran = full_frame_passes(finder, both, start=60)
    assert ran and ran[0] <= 60 + 6 and len(finder.tracker.tracks) == 2


def test_in_anonymize_every_full_frame_pass_runs():
    finder = FaceFinder(Spy(), smoothing=0, find_every=6, **{**finder_settings("anonymize"), "fine_every": 1000})
    ran = full_frame_passes(finder, [scene([(200, 180, 80)])] * 60)
    assert ran == list(range(0, 60, 6))


def test_a_face_lost_since_the_last_full_frame_pass_is_looked_for_at_the_next_one():
    finder = FaceFinder(Spy(), smoothing=0, find_every=6, fine_every=1000)
    frame = scene([(200, 180, 80)])
    assert full_frame_passes(finder, [frame] * 8) == [0]  # the one at 6 passed over: nothing changed
    finder.tracker.tracks.clear()  # the model lost the face (the picture did not change)
    ran = full_frame_passes(finder, [frame] * 6, start=8)
    assert ran == [12] and len(finder.tracker.tracks) == 1


class EdgeBlind(Spy):
    """Misses what its input's edge cuts, as the shipped model does (a 34 px face at a clip's
    edge scored 0.34 at most): a blob touching the edge scores 0."""

    def infer_batch(self, tensor: np.ndarray) -> np.ndarray:
        probability = super().infer_batch(tensor)
        for one in probability:
            _, labels = cv2.connectedComponents((one > 0.5).astype(np.uint8))
            rim = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
            one[np.isin(labels, rim[rim > 0])] = 0
        return probability


@pytest.mark.parametrize("border", [fine_scan.EDGE_BORDER, 0])
def test_a_small_face_cut_by_the_frame_edge_is_found_inside_the_zoomed_pass_border(monkeypatch, border):
    monkeypatch.setattr(fine_scan, "EDGE_BORDER", border)
    finder = FaceFinder(EdgeBlind(), smoothing=0)
    # half of a 30 px face past the right edge: too small for the coarse pass, cut in the zoomed one
    found = finder.find(scene([(320, 180, 80), (636, 200, 30)]), fine=True)
    at_edge = [box for box in found if box.x1 > 600]
    assert len(at_edge) == (1 if border else 0)
    if border:
        assert at_edge[0].x0 == pytest.approx(624, abs=3) and at_edge[0].x1 == pytest.approx(640, abs=1)


def test_a_model_that_normalises_outside_its_graph_gets_black_as_preprocess_makes_it():
    card = ModelCard(input_size=(64, 64), normalization_in_graph=False, color_order="RGB")
    black = preprocess(np.zeros((8, 8, 3), np.uint8), (8, 8), card)[0, :, 0, 0]
    assert np.allclose(black_input(card), black) and black_input(card).min() < -1.5


def test_the_border_leaves_the_probability_of_the_input_unchanged():
    segmenter = Spy()
    tensor = np.random.default_rng(1).integers(0, 255, (1, 3, 64, 96)).astype(np.float32)
    tensor[:, :, 20:40, 30:60] = np.asarray(SKIN_BGR, np.float32)[None, :, None, None]
    framed = fine_scan.probability_in_border(segmenter, tensor, (True, False, True, True))
    assert framed.shape == (64, 96) and np.array_equal(framed, segmenter.infer(tensor))
    border = fine_scan.EDGE_BORDER  # on the top, the left and the right
    assert segmenter.looks[0] == (64 + border, 96 + 2 * border)


def test_a_tile_gets_the_border_on_the_frame_edges_only_or_all_round_where_each_shape_costs():
    zoomed, frame = (736, 1280), scene([(320, 180, 80)])
    tiles = fine_scan.tile_grid(zoomed)
    columns = len(fine_scan.tile_starts(zoomed[1]))
    corner, left_edge, inside = tiles[0], tiles[columns], tiles[columns + 2]
    segmenter = Spy()
    for tile in (corner, left_edge, inside):
        fine_scan.blobs_in_tile(segmenter, frame, tile, zoomed, 4)
    side, border = fine_scan.TILE_SIDE, fine_scan.EDGE_BORDER
    assert segmenter.looks == [(side + border, side + border), (side, side + border), (side, side)]
    segmenter.few_shapes = True  # CUDA: one shape for every tile
    fine_scan.blobs_in_tile(segmenter, frame, inside, zoomed, 4)
    assert segmenter.looks[-1] == (side + 2 * border, side + 2 * border)


def test_a_photo_s_zoomed_pass_goes_without_the_border():
    stream, photo = Spy(), Spy()
    FaceFinder(stream, smoothing=0).find(scene([(320, 180, 80)]), fine=True)
    FaceFinder(photo, smoothing=0, photo=True).find(scene([(320, 180, 80)]), fine=True)
    border = fine_scan.EDGE_BORDER
    assert stream.looks[-1] == (736 + 2 * border, 1280 + 2 * border) and photo.looks[-1] == (736, 1280)

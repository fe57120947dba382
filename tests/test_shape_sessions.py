"""On a GPU provider, a session per input shape (onnxruntime's CUDA provider plans again at
each shape change; see realtime.shape_sessions). The GPU is faked: onnxruntime is made to
report CUDA for sessions that run on the CPU, so the results can be compared with the CPU's."""

from __future__ import annotations

import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from facecam.errors import FacecamError
from facecam.realtime import providers
from facecam.realtime.crops import Box, Crop
from facecam.realtime.faces import FaceFinder
from facecam.realtime.providers import PROVIDERS
from facecam.realtime.segmenter import Segmenter
from facecam.realtime.shape_sessions import ShapeSessions, padded_batch, padded_count
from facecam.realtime.smoothing import TemporalSmoother
from facecam.realtime.tracking import Track
from facecam.realtime.verifier import Verifier

TRT, CUDA, CPU = PROVIDERS["tensorrt"], PROVIDERS["cuda"], PROVIDERS["cpu"]


def test_batches_are_padded_to_a_power_of_two():
    assert [padded_count(n) for n in (1, 2, 3, 4, 5, 8, 9, 17)] == [1, 2, 4, 4, 8, 8, 16, 32]
    batch = np.ones((3, 2), np.float32)
    padded = padded_batch(batch)
    assert padded.shape == (4, 2) and (padded[:3] == 1).all() and (padded[3] == 0).all()
    assert padded_batch(np.ones((4, 2))).shape == (4, 2)


class _Session:
    def __init__(self, opened: list):
        opened.append(self)
        self.shapes = []

    def run(self, _outputs, feed):
        (tensor,) = feed.values()
        self.shapes.append(tensor.shape)
        return [tensor * 2]


def test_each_shape_keeps_its_own_session_and_the_oldest_goes_past_the_limit():
    opened: list = []
    sessions = ShapeSessions(lambda: _Session(opened), limit=2)
    first = _Session(opened)
    sessions.adopt((1, 3, 8, 8), first)
    out = sessions.run("x", np.ones((3, 3, 8, 8), np.float32))
    assert out.shape == (3, 3, 8, 8) and (out == 2).all()  # run at 4, cut back to 3
    assert opened[1].shapes == [(4, 3, 8, 8)]
    sessions.run("x", np.ones((1, 3, 8, 8), np.float32))
    assert first.shapes == [(1, 3, 8, 8)] and len(opened) == 2  # the adopted one, no new session
    sessions.run("x", np.ones((4, 3, 8, 8), np.float32))
    assert len(opened) == 2 and opened[1].shapes == [(4, 3, 8, 8)] * 2  # 3 and 4 share the padded shape
    sessions.run("x", np.ones((1, 3, 16, 16), np.float32))  # a third shape: the least recently used goes
    assert len(opened) == 3 and sessions.shapes == [(4, 3, 8, 8), (1, 3, 16, 16)]


@pytest.fixture
def fake_gpu(monkeypatch):
    """onnxruntime that says the provider asked for runs each session (all run on the CPU);
    returns the sessions made."""
    real = ort.InferenceSession
    made = []

    class OnCuda:
        def __init__(self, path, options, providers):
            self._session = real(path, options, providers=[CPU])
            self._providers = [p if isinstance(p, str) else p[0] for p in providers]
            made.append(self)

        def get_providers(self):
            return self._providers

        def __getattr__(self, name):
            return getattr(self._session, name)

    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", OnCuda)
    monkeypatch.setattr(providers, "nvidia_driver_present", lambda: True)
    return made


def test_a_gpu_segmenter_runs_each_shape_on_its_own_session_with_the_cpus_results(tiny_model, fake_gpu):
    rng = np.random.default_rng(0)
    crops = rng.random((3, 3, 96, 96), dtype=np.float32)
    frame = rng.random((1, 3, 128, 160), dtype=np.float32)
    with Segmenter(tiny_model, provider="cuda") as gpu:
        assert gpu.provider == CUDA and gpu.few_shapes
        opened = len(fake_gpu)
        gpu.infer(np.zeros((1, 3, *gpu.card.input_size), np.float32))
        assert len(fake_gpu) == opened  # the card's size runs on the session opened first
        got_crops, got_frame = gpu.infer_batch(crops), gpu.infer(frame)
        gpu.infer_batch(crops[:2])
        gpu.infer(frame)
        assert len(fake_gpu) == opened + 3  # (4, 3, 96, 96), (1, 3, 128, 160), (2, 3, 96, 96): once each
    fake_gpu.clear()
    with Segmenter(tiny_model, provider="cpu") as cpu:
        assert not cpu.few_shapes
        np.testing.assert_allclose(got_crops, cpu.infer_batch(crops), atol=1e-5)
        np.testing.assert_allclose(got_frame, cpu.infer(frame), atol=1e-5)


def test_on_a_gpu_every_face_crop_is_segmented_at_the_models_size(fake_gpu):
    small, webcam = Box(100, 100, 130, 130), Box(100, 100, 700, 700)  # on the CPU, both get fewer model pixels
    tracks = [Track(i, Crop.around(face), face, TemporalSmoother(0.6)) for i, face in enumerate((small, webcam))]
    for track in tracks:
        track.large = True
    with Segmenter("facecam_face", provider="cuda") as gpu:
        finder = FaceFinder(gpu)
        assert [finder.crop_input(t) for t in tracks] == [finder.crop_size] * 2 == [224, 224]
        assert not any(t.large for t in tracks)  # no 160 px size to stay at
    with Segmenter("facecam_face", provider="cpu") as cpu:
        assert all(FaceFinder(cpu).crop_input(t) < 224 for t in tracks)


def test_a_gpu_verifier_pads_its_batch_and_gives_the_cpus_scores(fake_gpu):
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    gpu = Verifier(provider="cuda")
    assert gpu.shape_sessions is not None
    got = gpu.scores(crops)
    assert got.shape == (3,) and (4, 3, 64, 64) in gpu.shape_sessions.shapes
    np.testing.assert_allclose(got, Verifier(provider="cpu").scores(crops), atol=1e-5)


def test_tensorrt_keeps_one_session(tiny_model, fake_gpu, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # its engine cache folder
    with Segmenter(tiny_model, provider="tensorrt") as trt:
        assert trt.provider == TRT and not trt.few_shapes and trt.shape_sessions is None


def test_threads_asking_for_one_new_shape_open_one_session():
    opened: list = []

    def slow_open():
        time.sleep(0.05)  # a session takes a while to open: the window where two could open one each
        return _Session(opened)

    sessions = ShapeSessions(slow_open)
    threads = [threading.Thread(target=sessions.run, args=("x", np.ones((2, 3, 8, 8), np.float32))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 1 and opened[0].shapes == [(2, 3, 8, 8)] * 4


def test_a_later_session_checks_the_file_and_its_provider_again(tiny_model, fake_gpu, monkeypatch):
    from facecam.realtime import shape_sessions

    checked = []
    monkeypatch.setattr(shape_sessions, "checked_card", lambda path: checked.append(path))
    with Segmenter(tiny_model, provider="cuda") as gpu:
        gpu.infer_batch(np.zeros((2, 3, 64, 64), np.float32))
        assert checked == [tiny_model]  # the file is read again for the new shape: checked again
        session_type = ort.InferenceSession  # the fake: a new session that says it fell back to the CPU
        monkeypatch.setattr(session_type, "get_providers", lambda self: [CPU])
        with pytest.raises(FacecamError, match="fell back"):
            gpu.infer_batch(np.zeros((4, 3, 64, 64), np.float32))

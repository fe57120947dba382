"""Long runs (memory, threads, FPS decay) and random bytes at every file input."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facecam.api import FaceStream
from facecam.errors import FacecamError, one_line
from facecam.realtime import cli
from facecam.realtime.compose import MODES
from facecam.realtime.pipeline import Pipeline
from facecam.realtime.segmenter import Segmenter

SOAK_FRAMES_PER_MODE = 5000


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def frames(count: int, height: int = 48, width: int = 64):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (8, height, width, 3), dtype=np.uint8)
    for i in range(count):
        yield base[i % 8]


@pytest.mark.slow
def test_soak_every_mode_memory_threads_and_fps(tiny_model):
    threads_before = threading.active_count()
    growth, decay = {}, {}
    with Segmenter(tiny_model) as seg:
        for mode in MODES:
            times: list[float] = []
            pipeline = Pipeline(FaceStream(segmenter=seg, mode=mode, verifier=None), measure_flicker=True)
            pipeline.run(frames(300), lambda f: None)  # warm-up: allocator pools, onnxruntime arenas
            start_rss = rss_mib()
            # CPU time of this process (all its threads), so other programs' load cannot fake a decay
            stats = pipeline.run(frames(SOAK_FRAMES_PER_MODE), lambda f, t=times: t.append(time.process_time()))
            assert stats.frames == SOAK_FRAMES_PER_MODE
            growth[mode] = rss_mib() - start_rss
            chunks = np.diff(np.array(times)[:: len(times) // 10])  # CPU seconds per tenth of the run
            decay[mode] = float(np.median(chunks[:5]) / np.median(chunks[5:]))  # later speed / earlier speed
            assert threading.active_count() == threads_before, f"{mode}: threads left behind"
    print(
        f"soak: {len(MODES)} x {SOAK_FRAMES_PER_MODE} frames; RSS growth MiB {growth}; "
        f"speed 2nd half / 1st half {decay}"
    )
    assert max(growth.values()) < 20, growth
    assert min(decay.values()) > 0.5, decay


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=4096))
def test_fuzz_random_bytes_as_video_image_and_model(tiny_model, tmp_path_factory, capsys, data):
    folder = tmp_path_factory.mktemp("fuzz")
    video, photos, model = folder / "in.mp4", folder / "photos", folder / "m.onnx"
    video.write_bytes(data)
    photos.mkdir()
    (photos / "p.jpg").write_bytes(data)
    model.write_bytes(data)
    runs = [
        ["--video", str(video), "--out", str(folder / "o.mp4"), "--model", str(tiny_model)],
        ["--images", str(photos), "--out", str(folder / "o"), "--model", str(tiny_model)],
        ["--video", str(video), "--out", str(folder / "o2.mp4"), "--model", str(model)],
    ]
    for argv in runs:
        code = cli.main(argv)
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err and "unexpected error" not in err, err


def test_worker_errors_become_one_line():
    folded = FacecamError(
        "Caught FacecamError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        "last):\n  File x\nfacecam.errors.FacecamError: size mismatch for a: image 2x2, label 1x1"
    )
    assert one_line(folded) == "size mismatch for a: image 2x2, label 1x1"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (("facecam", "--video", "x.mp4", "--max-frames", "-3"), "must be >= 0"),
        (("facecam", "--camera", "one"), "not a camera index"),
        (("facecam", "--video", "a.mp4", "--camera", "0"), "not allowed with"),
        (("facecam-train", "--data", "d", "--out", "r", "--epochs", "0"), "must be >= 1"),
        (("facecam-train", "--data", "d", "--out", "r", "--coarse-dropout", "1.5"), "within 0..1"),
        (("facecam-train", "prepare", "celebamask", "--src", "s", "--out", "o", "--size", "x"), "invalid"),
        (("facecam-export", "--checkpoint"), "expected one argument"),
        (("facecam-bench", "--warmup", "-1"), "must be >= 0"),
        (("facecam-bench", "--mode", "glow"), "invalid choice"),
    ],
)
def test_every_entry_point_rejects_bad_flags_in_one_line(argv, fragment):
    from conftest import assert_clean_error, run_cli

    assert_clean_error(run_cli(*argv), fragment)

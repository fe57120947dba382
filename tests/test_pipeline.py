"""Pipeline: how its stages stop."""

from __future__ import annotations

import threading
import time

import numpy as np

from facecam.api import FaceStream
from facecam.realtime.pipeline import Pipeline
from facecam.realtime.segmenter import Segmenter


def test_a_stage_that_does_not_stop_is_named(tiny_model):
    released = threading.Event()

    def hanging_camera():
        yield np.zeros((48, 64, 3), np.uint8)
        released.wait()  # a driver that never returns the next frame

    with Segmenter(tiny_model) as seg:
        pipeline = Pipeline(FaceStream(segmenter=seg, mode="blur", verifier=None))
        pipeline.join_timeout = 1.0
        stats = pipeline.run(hanging_camera(), lambda frame: False)  # the user quits after one frame
        assert stats.frames == 1 and stats.stuck == ["facecam-capture"]
        released.set()
        assert pipeline.run(iter([np.zeros((48, 64, 3), np.uint8)] * 3), lambda frame: None).stuck == []


def test_a_stage_abandoned_by_one_run_cannot_stop_or_fail_the_next(tiny_model):
    released, old_source_done, frame = threading.Event(), threading.Event(), np.zeros((48, 64, 3), np.uint8)

    def hanging_camera():
        yield frame
        released.wait()  # a driver that hangs, then fails long after its run gave up on it
        old_source_done.set()
        raise RuntimeError("the first run's camera")

    def next_video():
        yield frame
        released.set()  # the first run's stuck capture wakes up while this run is going
        old_source_done.wait(5)
        time.sleep(0.3)  # its error reaches its own run's list and flag, not this run's
        yield from [frame] * 5

    with Segmenter(tiny_model) as seg:
        pipeline = Pipeline(FaceStream(segmenter=seg, mode="blur", verifier=None))
        pipeline.join_timeout = 0.3
        assert pipeline.run(hanging_camera(), lambda f: False).stuck == ["facecam-capture"]
        seen = []
        stats = pipeline.run(next_video(), lambda f: seen.append(f.index))
    assert old_source_done.is_set()
    assert stats.frames == 6 and seen == list(range(6))


def test_warm_up_frames_are_not_counted_and_the_counted_ones_start_in_an_empty_pipeline(tiny_model):
    events = []

    def source():
        for i in range(10):
            events.append(("read", i))
            yield np.full((48, 64, 3), i * 20, np.uint8)

    def sink(frame):
        events.append(("out", frame.index))
        time.sleep(0.01)  # a slow sink: without the wait, capture would run ahead into the counted frames

    with Segmenter(tiny_model) as seg:
        pipeline = Pipeline(FaceStream(segmenter=seg, mode="blur", verifier=None), measure_flicker=True)
        stats = pipeline.run(source(), sink, warmup=4)
    assert [i for kind, i in events if kind == "out"] == list(range(10))  # every frame goes out
    assert stats.frames == 6 and len(stats.latency_ms) == 6 and len(stats.stage_ms["compose"]) == 6
    # frame 4 is read only after frame 3, the last warm-up frame, has gone out
    assert events.index(("read", 4)) > events.index(("out", 3))
    assert 0 < stats.seconds < 5 and 0 <= stats.cpu_seconds

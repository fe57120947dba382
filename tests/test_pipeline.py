"""Pipeline: how its stages stop."""

from __future__ import annotations

import threading

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

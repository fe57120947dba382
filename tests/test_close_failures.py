"""A failure while finishing an output never hides the error that stopped the run: the first
error goes on, the finishing failure is added to it as a note (and is in the CLI's one line)."""

from __future__ import annotations

import numpy as np
import pytest

from facecam.errors import FacecamError, one_line
from facecam.realtime import runners
from facecam.realtime.benchmark import BenchConfig, run_benchmark
from facecam.realtime.compose import ComposeSettings
from facecam.realtime.segmenter import Segmenter
from facecam.realtime.video_io import VideoWriter


def _broken_output(monkeypatch, fail_at: int = 3) -> None:
    """Writing fails at frame ``fail_at`` (a full disk), and finishing the file fails as well."""
    write = VideoWriter.write

    def failing_write(self, frame, timestamp=None):
        if self.frames_written == fail_at:
            raise FacecamError(f"the disk of {self.path} is full (under 1 MiB free); free some space")
        write(self, frame, timestamp)

    def failing_close(self, keep=True):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(VideoWriter, "write", failing_write)
    monkeypatch.setattr(VideoWriter, "close", failing_close)


def test_a_writer_block_keeps_its_error_when_finishing_fails(tmp_path):
    def full_disk(keep):
        raise OSError(28, "No space left on device")

    with pytest.raises(FacecamError, match="the model stopped") as caught:
        with VideoWriter(tmp_path / "out.mp4", 12, 64, 48) as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8))
            writer._finish = full_disk  # flushing the encoder fails
            raise FacecamError("the model stopped")
    assert one_line(caught.value) == (
        f"the model stopped; finishing {tmp_path / 'out.mp4'} failed too: [Errno 28] No space left on device"
    )


def test_a_video_job_keeps_its_error_when_finishing_fails(tiny_model, clip, tmp_path, monkeypatch):
    _broken_output(monkeypatch)
    out = tmp_path / "out.mp4"
    with Segmenter(tiny_model) as seg, pytest.raises(FacecamError) as caught:
        runners.run_video(seg, clip, out, runners.JobOptions(ComposeSettings("blur")))
    assert str(caught.value).startswith(f"the disk of {out} is full")
    assert f"finishing {out} failed too: [Errno 5] Input/output error" in str(caught.value)


def test_a_benchmark_keeps_its_error_when_releasing_fails(tiny_model, clip, monkeypatch):
    _broken_output(monkeypatch)
    cfg = BenchConfig(source=str(clip), model=str(tiny_model), provider="cpu", verifier=None, warmup=2, frames=8)
    with pytest.raises(FacecamError, match="is full") as caught:
        run_benchmark(cfg)
    assert "releasing the paced camera and the timing output failed too: [Errno 5] Input/output error" in one_line(
        caught.value
    )

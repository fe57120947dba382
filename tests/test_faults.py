"""Faults mid-stream: a camera that dies, corrupt frames, an inference error, a full disk, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import probe, run_cli, start_cli, write_clip

from facecam.errors import CameraError
from facecam.realtime import cli, runners
from facecam.realtime.camera import CameraReader
from facecam.realtime.faces import FaceFinder


def decodable_frames(path: Path) -> int:
    """Frames a player gets from ``path``; raises if the file is not playable."""
    return probe(path)["frames"]


class DyingCamera(CameraReader):
    """Plays a clip once, then the 'device' is gone: every re-open fails."""

    opened = 0

    def _open(self) -> None:
        DyingCamera.opened += 1
        if DyingCamera.opened > 1:
            raise CameraError("gone")
        super()._open()


def test_camera_that_stops_is_retried_then_exits_keeping_the_recording(tiny_model, tmp_path, monkeypatch, capsys):
    clip = write_clip(tmp_path / "cam.mp4", frames=20, audio=False)
    DyingCamera.opened = 0
    monkeypatch.setattr(runners, "CameraReader", lambda index: DyingCamera(str(clip), retries=2))
    out = tmp_path / "rec.mp4"
    code = cli.main(["--camera", "0", "--no-display", "--out", str(out), "--model", str(tiny_model)])
    err = capsys.readouterr().err
    assert code == 2 and "stopped delivering frames (re-opened 2 times)" in err and "Traceback" not in err
    assert DyingCamera.opened == 3  # the first open and two retries
    assert decodable_frames(out) > 0


def test_corrupt_frames_are_skipped_and_reported(tiny_model, tmp_path):
    clip = write_clip(tmp_path / "c.mp4", frames=60, size=(240, 320))
    data = bytearray(clip.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 4000, 7):
        data[i] ^= 0x5A
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    result = run_cli("facecam", "--video", str(bad), "--out", str(out), "--model", str(tiny_model))
    assert result.returncode == 0, result.stderr
    assert "corrupt frame(s)" in result.stderr and "Traceback" not in result.stderr
    assert 30 < decodable_frames(out) < 60


def fail_inference_from_frame(monkeypatch, first: int) -> None:
    """From frame ``first`` on, the model gets an input onnxruntime refuses (a real inference error)."""
    real_process = FaceFinder.process

    def failing_process(self, frame, index, timings=None):
        if index >= first:
            self.segmenter.infer_batch(np.zeros((1, 2, 64, 64), np.float32))  # 2 channels: refused
        return real_process(self, frame, index, timings)

    monkeypatch.setattr(FaceFinder, "process", failing_process)


def test_inference_error_stops_cleanly_keeping_partial_output(tiny_model, clip, tmp_path, monkeypatch, capsys):
    fail_inference_from_frame(monkeypatch, 18)  # of 24: the frames before it have time to be written
    out = tmp_path / "out.mp4"
    code = cli.main(["--video", str(clip), "--out", str(out), "--model", str(tiny_model)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("facecam: error: inference failed") and "kept, playable" in err[-1]
    assert 0 < decodable_frames(out) <= 18
    assert not list(tmp_path.glob(".*partial*"))


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); the full-disk path is untested on this machine")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_keeps_a_playable_file_and_nothing_else(tiny_model, tiny_disk, tmp_path):
    clip = write_clip(tmp_path / "big.mp4", frames=240, size=(240, 320), fps=24, noise=20, audio=True)
    out = tiny_disk / "out.mp4"
    result = run_cli(
        "facecam", "--video", str(clip), "--out", str(out), "--model", str(tiny_model), "--mode", "overlay"
    )
    assert result.returncode == 2, result.stderr
    assert "is full" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in tiny_disk.iterdir()] == ["out.mp4"]
    assert 0 < decodable_frames(out) < 240


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_finish_the_file(tiny_model, tmp_path, sig):
    clip = write_clip(tmp_path / "long.mp4", frames=1500, fps=30, size=(240, 320))
    out = tmp_path / "out.mp4"
    proc = start_cli("facecam", "--video", str(clip), "--out", str(out), "--model", str(tiny_model), "--no-display")
    partial = tmp_path / ".out.partial.mp4"
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert 0 < decodable_frames(out) < 1500
    assert probe(out)["audio"] == "aac"
    assert not partial.exists()


def test_a_partial_result_never_replaces_an_existing_output(tiny_model, clip, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the user's earlier result")
    fail_inference_from_frame(monkeypatch, 18)
    assert cli.main(["--video", str(clip), "--out", str(out), "--model", str(tiny_model)]) == 2
    assert out.read_bytes() == b"the user's earlier result"
    partial = tmp_path / "out.partial.mp4"
    assert "out.partial.mp4" in capsys.readouterr().err and 0 < decodable_frames(partial) <= 18


def test_photos_that_would_overwrite_each_other_are_refused(tiny_model, tmp_path):
    import cv2
    from conftest import assert_clean_error, draw_face_frame, run_cli

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), draw_face_frame(0.0))
    cv2.imwrite(str(photos / "a.png"), draw_face_frame(1.0))
    result = run_cli(
        "facecam", "--images", str(photos), "--out", str(tmp_path / "o"), "--mode", "mask", "--model", str(tiny_model)
    )
    assert_clean_error(result, "would both be written as a.png")
    assert not (tmp_path / "o").exists()


class SignalAfterAudioMux:
    """Wraps the writer's container; delivers a real signal right after the ``after``-th audio
    packet is muxed. That is the moment CI once hit: the packet was written but the writer had
    not yet noted it, so finishing the file muxed it again and FFmpeg refused the repeated time."""

    def __init__(self, container, sig: int, after: int) -> None:
        self._container, self._sig, self._after, self.audio_muxed = container, sig, after, 0

    def mux(self, packet) -> None:
        self._container.mux(packet)
        if packet.stream.type == "audio":
            self.audio_muxed += 1
            if self.audio_muxed == self._after:
                signal.raise_signal(self._sig)

    def __getattr__(self, name):
        return getattr(self._container, name)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_between_two_writes_leaves_a_consistent_file(tmp_path, sig):
    from fractions import Fraction

    from facecam.errors import stop_on_sigterm
    from facecam.realtime.video_io import VideoWriter
    from facecam.realtime.video_reader import VideoReader

    clip = write_clip(tmp_path / "in.mp4", frames=48, fps=12)
    out = tmp_path / "out.mp4"
    writer = VideoWriter(out, Fraction(12), 160, 120, audio_from=clip)
    writer._out = SignalAfterAudioMux(writer._out, sig, after=3)
    pytest_sigterm = signal.getsignal(signal.SIGTERM)
    stop_on_sigterm()  # as the CLI does
    try:
        with pytest.raises(KeyboardInterrupt), VideoReader(clip) as reader:
            for frame in reader.frames():
                writer.write(frame)
    finally:
        signal.signal(signal.SIGTERM, pytest_sigterm)
    writer.mark_incomplete()
    writer.close(keep=True)  # raised "writing audio ... failed (Invalid argument)" before the fix
    got = probe(out)
    assert 0 < got["frames"] < 48 and got["audio"] == "aac"
    assert writer._out.audio_muxed > 3


def test_held_signals_go_to_their_own_handler_once_the_outermost_block_ends():
    from facecam.errors import interrupts_deferred

    seen: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with interrupts_deferred():
            with interrupts_deferred():
                signal.raise_signal(signal.SIGINT)
            assert seen == []  # the inner block's end delivers nothing
        assert seen == [signal.SIGINT]
        with pytest.raises(OSError, match="disk"), interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            raise OSError("disk full")  # the block's own error goes on; the run stops with it
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, before)

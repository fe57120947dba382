"""The remux of a finished MP4/MOV when things go wrong: no room for the copy, a full disk
half-way, Ctrl-C. Each time the output keeps every frame, fragmented and playable, and no
temporary file is left."""

from __future__ import annotations

import signal
import subprocess

import pytest
from conftest import probe, write_clip
from players import top_level_boxes

from facecam.errors import FacecamError
from facecam.realtime import cli, remux
from facecam.realtime.video_io import VideoWriter
from facecam.realtime.video_reader import VideoReader


def write_all(source, out):
    """Every frame of ``source`` through a VideoWriter to ``out``, finished as a complete run."""
    with VideoReader(source) as reader:
        writer = VideoWriter(out, reader.fps, reader.width, reader.height, time_base=reader.time_base)
        for i, frame in enumerate(reader.frames()):
            writer.write(frame, timestamp=reader.take_frame_time(i))
    writer.close(keep=True)
    return out


def test_a_failed_remux_keeps_the_whole_fragmented_file(tiny_model, clip, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(remux, "free_bytes", lambda folder: 0)  # the copy would not fit
    out = tmp_path / "out.mp4"
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        assert cli.main(["--video", str(clip), "--out", str(out), "--model", str(tiny_model)]) == 2
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # the CLI sets its own
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("facecam: error: could not make") and "--remux-only" in err
    assert probe(out)["frames"] == 24 and probe(out)["audio"] == "aac"  # every frame, playable
    assert "moof" in top_level_boxes(out)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_a_disk_that_fills_during_the_remux_keeps_the_whole_fragmented_file(tmp_path, monkeypatch):
    clip = write_clip(tmp_path / "noisy.mp4", frames=96, size=(240, 320), fps=24, noise=30, audio=False)
    size = write_all(clip, tmp_path / "sized.mp4").stat().st_size  # as large as the output will be
    disk = tmp_path / "disk"
    disk.mkdir()
    # Room for the output and the writer's 1 MiB reserve, not for a second copy of it.
    kib = (size + (1 << 20) + size // 4) >> 10
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); a disk filling during the remux is untested")
    try:
        monkeypatch.setattr(remux, "free_bytes", lambda folder: 1 << 40)  # past the check: a real ENOSPC
        out = disk / "out.mp4"
        with pytest.raises(FacecamError, match="could not make .*--remux-only"):
            write_all(clip, out)
        assert probe(out)["frames"] == 96 and "moof" in top_level_boxes(out)
        assert [p.name for p in disk.iterdir()] == ["out.mp4"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_ctrl_c_during_the_remux_puts_the_fragmented_file_in_place(clip, tmp_path, monkeypatch):
    real_copy = remux._copy_packets

    def interrupted_copy(*args):
        # A real Ctrl-C: the remux (seconds on a long file) is not held back like a frame write.
        signal.raise_signal(signal.SIGINT)
        return real_copy(*args)

    monkeypatch.setattr(remux, "_copy_packets", interrupted_copy)
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        write_all(clip, out)
    assert probe(out)["frames"] == 24 and "moof" in top_level_boxes(out)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_a_torn_last_fragment_is_left_out_of_the_copy(clip, tmp_path):
    partial = tmp_path / "partial.mp4"
    with VideoReader(clip) as reader:
        writer = VideoWriter(partial, reader.fps, reader.width, reader.height, time_base=reader.time_base)
        for i, frame in enumerate(reader.frames()):
            writer.write(frame, timestamp=reader.take_frame_time(i))
    writer.mark_incomplete()
    writer.close(keep=True)
    whole = remux.complete_length(partial)
    killed = tmp_path / "killed.mp4"  # as a SIGKILL half-way through writing the second fragment leaves it
    fragments = [i for i, box in enumerate(top_level_boxes(partial)) if box == "moof"]
    assert len(fragments) >= 2
    data = partial.read_bytes()
    second = data.index(b"moof", data.index(b"moof") + 4) - 4
    killed.write_bytes(data[: second + (whole - second) // 2])
    fixed = tmp_path / "fixed.mp4"
    remux.remux_file(killed, fixed)
    assert probe(fixed)["frames"] == 12  # the first fragment: one second at 12 fps


class SignalOnClose:
    """Wraps the writer's container: a real Ctrl-C arrives while the file is being finished."""

    def __init__(self, container) -> None:
        self._container = container

    def close(self) -> None:
        signal.raise_signal(signal.SIGINT)
        self._container.close()

    def __getattr__(self, name):
        return getattr(self._container, name)


def test_ctrl_c_while_finishing_puts_the_file_in_place_before_it_goes_on(clip, tmp_path):
    out = tmp_path / "out.mp4"
    with VideoReader(clip) as reader:
        writer = VideoWriter(out, reader.fps, reader.width, reader.height, audio_from=clip)
        for frame in reader.frames():
            writer.write(frame)
    writer._out = SignalOnClose(writer._out)
    with pytest.raises(KeyboardInterrupt):
        writer.close(keep=True)
    # Held until the file was whole and in place; the remux, seconds on a long file, is skipped.
    assert probe(out)["frames"] == 24 and probe(out)["audio"] == "aac"
    assert "moof" in top_level_boxes(out)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]

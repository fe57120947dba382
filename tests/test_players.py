"""facecam's outputs in real players: headless Chromium and GStreamer's discoverer.

A finished output must show its real duration (within one frame of the input's) in both and
play to its last frame in the browser, in every container the browser plays; a partial one
(Ctrl-C, a killed run) must still open in both, and ``--remux-only`` must make it whole.
The clients come from Debian (``.ci/run`` installs them); without them these tests skip.
"""

from __future__ import annotations

import itertools
import shutil
import signal
from fractions import Fraction
from pathlib import Path

import av
import pytest
from conftest import probe, run_cli, write_clip
from players import browse, chromium, discover, discoverer_missing

FPS = 12
SIZE = (240, 320)  # even sides: 4:2:0 H.264, which every browser decodes
#: the VFR clip of test_cli_video: 30 fps, a second at 10 fps, 30 fps again
VFR_TIMES = [i / 30 for i in range(15)] + [0.5 + i / 10 for i in range(10)] + [1.5 + i / 30 for i in range(15)]
CONTAINERS = [".mp4", ".m4v", ".mov", ".mkv", ".avi"]
BROWSER_PLAYS = [".mp4", ".m4v", ".mov", ".mkv"]  # Chromium opens no AVI
#: finished outputs: name -> the input it was made from
FINISHED = {**{f"out{s}": "in.mp4" for s in CONTAINERS}, "vfr.mp4": "vfr_in.mp4", "vfr.mkv": "vfr_in.mp4"}
PARTIAL = ["interrupted.mp4", "killed.mp4"]


def ffmpeg_seconds(path: Path) -> float:
    """The duration FFmpeg reads (it finds a fragmented file's through its mfra)."""
    with av.open(str(path)) as c:
        return c.duration / 1e6


def frame_time(path: Path) -> float:
    """One frame of ``path`` at its average rate: the tolerance of every duration here."""
    with av.open(str(path)) as c:
        return 1 / float(c.streams.video[0].average_rate)


@pytest.fixture(scope="module")
def media(tiny_model, tmp_path_factory) -> Path:
    """Every output facecam writes, made as a user makes them, in one folder."""
    folder = tmp_path_factory.mktemp("players")
    clip = write_clip(folder / "in.mp4", frames=36, fps=FPS, size=SIZE)
    write_clip(folder / "vfr_in.mp4", fps=30, size=SIZE, times=VFR_TIMES)
    for name, source in FINISHED.items():
        result = run_cli(
            "facecam", "--video", str(folder / source), "--out", str(folder / name), "--model", str(tiny_model)
        )
        assert result.returncode == 0, result.stderr
    _record_camera(tiny_model, clip, folder / "cam.mp4")
    _write_partials(clip, folder)
    fixed = run_cli(
        "facecam", "--video", str(folder / "killed.mp4"), "--remux-only", "--out", str(folder / "fixed.mp4")
    )
    assert fixed.returncode == 0, fixed.stderr
    assert not list(folder.glob(".*")), "a temporary file was left behind"
    return folder


def _record_camera(tiny_model: Path, clip: Path, out: Path) -> None:
    """``facecam --camera 0 --out cam.mp4``, with the clip standing in for the camera."""
    from facecam.realtime import cli, runners
    from facecam.realtime.camera import CameraReader

    sigterm = signal.getsignal(signal.SIGTERM)  # the CLI sets its own
    real = runners.CameraReader
    runners.CameraReader = lambda index: CameraReader(str(clip))
    try:
        argv = ["--camera", "0", "--no-display", "--out", str(out), "--model", str(tiny_model), "--max-frames", "30"]
        assert cli.main(argv) == 0
    finally:
        runners.CameraReader = real
        signal.signal(signal.SIGTERM, sigterm)


def _write_partials(clip: Path, folder: Path) -> None:
    """What an interrupted run leaves (the writer finishes the fragments: interrupted.mp4) and
    what a killed one leaves (the hidden temporary file as it was mid-run: killed.mp4)."""
    from facecam.realtime.video_io import VideoWriter
    from facecam.realtime.video_reader import VideoReader

    with VideoReader(clip) as reader:
        writer = VideoWriter(folder / "interrupted.mp4", Fraction(FPS), SIZE[1], SIZE[0], audio_from=clip)
        for i, frame in enumerate(itertools.islice(reader.frames(), 20)):
            writer.write(frame, timestamp=reader.take_frame_time(i))
        writer.mark_incomplete()  # as after Ctrl-C
        writer.close(keep=True)
    noisy = write_clip(folder / "noisy.mp4", frames=60, fps=FPS, size=SIZE, noise=30)
    with VideoReader(noisy) as reader:
        writer = VideoWriter(folder / "killed_run.mp4", Fraction(FPS), SIZE[1], SIZE[0], audio_from=noisy)
        for i, frame in enumerate(itertools.islice(reader.frames(), 45)):
            writer.write(frame, timestamp=reader.take_frame_time(i))
        shutil.copyfile(writer.tmp, folder / "killed.mp4")  # SIGKILL now: the file as it is on disk
        writer.close(keep=False)
    for name in ("noisy.mp4", "killed_run.mp4"):
        (folder / name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def browser(request) -> dict[str, dict]:
    if chromium() is None:  # asked before the outputs are made: a skip costs nothing
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    media = request.getfixturevalue("media")
    names = [*FINISHED, "in.mp4", "vfr_in.mp4", "cam.mp4", *PARTIAL, "fixed.mp4"]
    return browse(media, [n for n in names if not n.endswith(".avi")])


@pytest.fixture(scope="module")
def gstreamer(request) -> dict[str, dict]:
    why = discoverer_missing()
    if why:
        pytest.skip(why)
    media = request.getfixturevalue("media")
    return discover(sorted(p for p in media.iterdir() if p.suffix in CONTAINERS))


def assert_plays_to_the_end(read: dict, duration: float, last_frame: float, frame: float) -> None:
    """Chromium's report on one file: its duration and the last frame presented."""
    assert "error" not in read["stream"] and "error" not in read["seek"], read
    assert read["stream"]["duration"] == pytest.approx(duration, abs=frame), "duration read as a stream"
    assert read["seek"]["duration"] == pytest.approx(duration, abs=frame), "duration read with byte ranges"
    assert read["seek"]["frames"], "no frame was presented after seeking to the end"
    assert max(read["seek"]["frames"]) == pytest.approx(last_frame, abs=frame / 2), "the last frame was not shown"
    assert (read["stream"]["width"], read["stream"]["height"]) == (SIZE[1], SIZE[0])


def last_frame_time(path: Path) -> float:
    with av.open(str(path)) as c:
        return max(float(f.time) for f in c.decode(video=0))


@pytest.mark.parametrize("name", [n for n in FINISHED if Path(n).suffix in BROWSER_PLAYS])
def test_the_browser_reads_the_real_duration_and_plays_the_last_frame(browser, media, name):
    source, frame = media / FINISHED[name], frame_time(media / FINISHED[name])
    expected = browser[FINISHED[name]]["stream"]["duration"]  # the input's, as the browser reads it
    assert expected == pytest.approx(ffmpeg_seconds(source), abs=frame)
    assert_plays_to_the_end(browser[name], expected, last_frame_time(source), frame)


@pytest.mark.parametrize("name", list(FINISHED))
def test_the_discoverer_reads_the_real_duration(gstreamer, media, name):
    read, source = gstreamer[name], gstreamer[FINISHED[name]]
    assert read["result"] == "ok" and source["result"] == "ok", (read, source)
    assert source["duration"] == pytest.approx(ffmpeg_seconds(media / FINISHED[name]), abs=frame_time(media / name))
    assert read["duration"] == pytest.approx(source["duration"], abs=frame_time(media / name))
    assert read["video"] == [[SIZE[1], SIZE[0]]] and read["audio"] == 1


def test_a_camera_recording_is_read_right_by_both(browser, gstreamer, media):
    path = media / "cam.mp4"
    seconds, frame = ffmpeg_seconds(path), frame_time(path)
    assert_plays_to_the_end(browser["cam.mp4"], seconds, last_frame_time(path), frame)
    assert gstreamer["cam.mp4"]["result"] == "ok"
    assert gstreamer["cam.mp4"]["duration"] == pytest.approx(seconds, abs=frame)


@pytest.mark.parametrize("name", PARTIAL)
def test_a_partial_output_still_opens_in_both(browser, gstreamer, media, name):
    # Its duration may be wrong in these two (that is what --remux-only fixes), but it opens and plays.
    stream = browser[name]["stream"]
    assert "error" not in stream and (stream["width"], stream["height"]) == (SIZE[1], SIZE[0]), stream
    assert stream["duration"] > 0
    assert gstreamer[name]["result"] == "ok" and gstreamer[name]["video"] == [[SIZE[1], SIZE[0]]], gstreamer[name]


def test_remux_only_makes_a_killed_runs_file_whole_for_both(browser, gstreamer, media):
    fixed = media / "fixed.mp4"
    frames = probe(fixed)["frames"]
    assert 12 <= frames <= 45  # every whole fragment of the 45 frames written before the kill
    seconds = ffmpeg_seconds(fixed)
    assert seconds == pytest.approx(frames / FPS, abs=1 / FPS)
    assert_plays_to_the_end(browser["fixed.mp4"], seconds, (frames - 1) / FPS, 1 / FPS)
    assert gstreamer["fixed.mp4"]["result"] == "ok"
    assert gstreamer["fixed.mp4"]["duration"] == pytest.approx(seconds, abs=1 / FPS)

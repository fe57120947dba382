"""`facecam --video` end to end through the CLI: every mode, frames, size, audio, bad input, Ctrl-C,
ordinary MP4/MOV files when finished, and `--remux-only`."""

from __future__ import annotations

import pytest
from conftest import assert_clean_error, frame_times, probe, run_cli, write_clip
from players import movie_seconds, top_level_boxes

from facecam.realtime.compose import MODES


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_keeps_frames_size_fps_and_audio(tiny_model, clip, tmp_path, mode):
    out = tmp_path / f"{mode}.mp4"
    result = run_cli("facecam", "--video", str(clip), "--out", str(out), "--mode", mode, "--model", str(tiny_model))
    assert result.returncode == 0, result.stderr
    assert "CPUExecutionProvider" in result.stderr  # says which provider is active
    got, src = probe(out), probe(clip)
    assert got["frames"] == src["frames"] == 24
    assert (got["width"], got["height"]) == (src["width"], src["height"])
    assert got["fps"] == pytest.approx(src["fps"])
    assert got["audio"] == "aac"
    assert not list(tmp_path.glob(".*partial*")), "temporary file left behind"


def test_frames_keep_their_times_so_audio_stays_in_sync(tiny_model, clip, tmp_path):
    out = tmp_path / "out.mp4"
    assert run_cli("facecam", "--video", str(clip), "--out", str(out), "--model", str(tiny_model)).returncode == 0
    # Not 2 frames late, as B-frames in a fragmented MP4 (no edit list) would make them.
    assert frame_times(out) == pytest.approx(frame_times(clip), abs=1e-3)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_a_variable_frame_rate_keeps_its_frame_times(tiny_model, tmp_path, suffix):
    # As a phone records in dim light: 30 fps, then 10 fps for a second, then 30 fps again.
    times = [i / 30 for i in range(15)] + [0.5 + i / 10 for i in range(10)] + [1.5 + i / 30 for i in range(15)]
    clip = write_clip(tmp_path / "vfr.mp4", fps=30, times=times)
    out = tmp_path / f"out{suffix}"
    assert run_cli("facecam", "--video", str(clip), "--out", str(out), "--model", str(tiny_model)).returncode == 0
    # Timed at the average rate (20 fps) instead, the 10 fps second ends 0.25 s ahead of its audio.
    assert frame_times(out) == pytest.approx(times, abs=1e-3)
    assert probe(out)["audio"] == "aac"


def test_frame_times_nobody_takes_are_not_kept(clip, monkeypatch):
    from facecam.realtime import video_reader

    monkeypatch.setattr(video_reader, "FRAME_TIMES_KEPT", 5)
    with video_reader.VideoReader(clip) as reader:  # read without a writer, as the benchmark does
        assert sum(1 for _ in reader.frames()) == 24
        assert reader.take_frame_time(23) == pytest.approx(23 / 12) and reader.take_frame_time(0) is None
        assert len(reader._frame_times) == 4


def test_joined_recordings_whose_clock_goes_back_play_on(tiny_model, tmp_path):
    import av

    mp4 = write_clip(tmp_path / "a.mp4", frames=24, fps=12)
    ts = tmp_path / "a.ts"
    with av.open(str(mp4)) as src, av.open(str(ts), "w", format="mpegts") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    joined = tmp_path / "joined.ts"  # `cat a.ts b.ts`: the second half's clock starts again at 0
    joined.write_bytes(ts.read_bytes() * 2)
    out = tmp_path / "out.mp4"
    assert run_cli("facecam", "--video", str(joined), "--out", str(out), "--model", str(tiny_model)).returncode == 0
    # The second half goes on a frame after the first (it once piled up in 0.3 ms at the joint).
    assert frame_times(out) == pytest.approx([i / 12 for i in range(48)], abs=1e-3)
    assert probe(out)["audio"] == "aac"


def test_anonymize_with_a_margin_runs_the_whole_pipeline(tiny_model, clip, tmp_path):
    out = tmp_path / "anon.mp4"
    argv = ("--video", str(clip), "--out", str(out), "--mode", "anonymize", "--anonymize-margin", "0.3", "--stats")
    result = run_cli("facecam", *argv, "--model", str(tiny_model))
    assert result.returncode == 0, result.stderr
    assert probe(out)["frames"] == 24 and "finder" in result.stderr and "faces per frame" in result.stderr
    bad = run_cli("facecam", *argv[:-3], "--anonymize-margin", "5", "--model", str(tiny_model))
    assert_clean_error(bad, "anonymize_margin must be within 0..2")


def test_portrait_odd_size_clip_without_audio(tiny_model, tmp_path):
    clip = write_clip(tmp_path / "portrait.mp4", frames=10, size=(200, 112), audio=False)
    out = tmp_path / "out.mkv"
    result = run_cli("facecam", "--video", str(clip), "--out", str(out), "--mode", "blur", "--model", str(tiny_model))
    assert result.returncode == 0, result.stderr
    got = probe(out)
    assert (got["frames"], got["width"], got["height"], got["audio"]) == (10, 112, 200, None)


def test_replace_with_background_image_and_max_frames(tiny_model, clip, tmp_path):
    import cv2
    import numpy as np

    bg = tmp_path / "bg.jpg"
    cv2.imwrite(str(bg), np.full((50, 90, 3), (0, 0, 255), np.uint8))
    out = tmp_path / "out.mp4"
    result = run_cli(
        "facecam",
        "--video",
        str(clip),
        "--out",
        str(out),
        "--mode",
        "replace",
        "--background",
        str(bg),
        "--max-frames",
        "5",
        "--model",
        str(tiny_model),
    )
    assert result.returncode == 0, result.stderr
    assert probe(out)["frames"] == 5


def test_output_replaces_existing_file_only_when_complete(tiny_model, clip, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"old")
    bad = run_cli("facecam", "--video", str(tmp_path / "missing.mp4"), "--out", str(out), "--model", str(tiny_model))
    assert bad.returncode != 0
    assert out.read_bytes() == b"old"
    good = run_cli("facecam", "--video", str(clip), "--out", str(out), "--model", str(tiny_model))
    assert good.returncode == 0 and probe(out)["frames"] == 24


def test_bad_inputs_fail_cleanly_and_change_nothing(tiny_model, clip, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage" * 10)
    m = str(tiny_model)
    out = str(tmp_path / "o.mp4")
    cases = [
        (("--video", str(tmp_path / "nope.mp4"), "--out", out, "--model", m), "does not exist"),
        (("--video", str(text), "--out", out, "--model", m), "not a readable video"),
        (("--video", str(clip), "--out", str(clip), "--model", m), "is the input"),
        (("--video", str(clip), "--out", out, "--model", str(tmp_path / "none.onnx")), "does not exist"),
        (("--video", str(clip), "--out", out, "--model", str(corrupt)), "cannot load model"),
        (("--video", str(clip), "--out", out, "--model", "no_such_model"), "unknown model"),
        (("--video", str(clip), "--out", out, "--mode", "sparkle", "--model", m), "invalid choice"),
        (
            (
                "--video",
                str(clip),
                "--out",
                out,
                "--mode",
                "replace",
                "--background",
                str(tmp_path / "bg.png"),
                "--model",
                m,
            ),
            "background",
        ),
        (("--video", str(clip), "--out", str(tmp_path / "no" / "dir" / "o.mp4"), "--model", m), "does not exist"),
        (("--video", str(clip), "--out", str(tmp_path / "o.xyz"), "--model", m), "unsupported suffix"),
        (("--video", str(clip), "--out", out, "--smoothing", "2", "--model", m), "0..1"),
        (("--video", str(clip), "--no-display", "--model", m), "--out"),
        (("--images", str(tmp_path / "nodir"), "--out", str(tmp_path / "res"), "--model", m), "does not exist"),
        (("--camera", "97", "--no-display", "--out", out, "--model", m), "camera 97 does not open"),
        (("--video", str(clip), "--out", out, "--model", m, "--provider", "cuda"), "cuda"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, fragment in cases:
        assert_clean_error(run_cli("facecam", *args), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert probe(clip)["frames"] == 24  # the input is untouched


def test_missing_default_model_says_how_to_pass_model(clip, tmp_path, monkeypatch):
    from facecam.realtime import segmenter

    monkeypatch.setattr(segmenter, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(segmenter.FacecamError, match="pass a model: the path of a .onnx"):
        segmenter.resolve_model(None, weights_dir=tmp_path)


def test_audio_mp4_cannot_hold_is_reencoded(tiny_model, tmp_path):
    from fractions import Fraction

    import av
    import numpy as np
    from conftest import draw_face_frame

    src = tmp_path / "pcm.mkv"
    with av.open(str(src), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=8000)
        for i in range(20):
            for packet in video.encode(av.VideoFrame.from_ndarray(draw_face_frame(i / 4), format="bgr24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        tone = (3000 * np.sin(np.arange(16000) / 5)).astype(np.int16)
        for start in range(0, len(tone), 800):
            frame = av.AudioFrame.from_ndarray(tone[start : start + 800][None], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 8000, start, Fraction(1, 8000)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    out = tmp_path / "out.mp4"
    result = run_cli("facecam", "--video", str(src), "--out", str(out), "--model", str(tiny_model))
    assert result.returncode == 0, result.stderr
    got = probe(out)
    assert got["frames"] == 20 and got["audio"] == "aac"
    kept = tmp_path / "out.mkv"
    assert run_cli("facecam", "--video", str(src), "--out", str(kept), "--model", str(tiny_model)).returncode == 0
    assert probe(kept)["audio"] == "pcm_s16le"


def test_audio_stays_in_sync_when_the_source_starts_late(tiny_model, tmp_path):
    import av
    from conftest import write_clip

    mp4 = write_clip(tmp_path / "a.mp4", frames=36, fps=12)
    ts = tmp_path / "a.ts"  # like a camcorder's MPEG-TS: timestamps start 1.5 s in
    with av.open(str(mp4)) as src, av.open(str(ts), "w", format="mpegts") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                shift = round(1.5 / packet.time_base)
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    with av.open(str(ts)) as c:
        assert c.streams.video[0].start_time * c.streams.video[0].time_base > 1
    out = tmp_path / "out.mp4"
    assert run_cli("facecam", "--video", str(ts), "--out", str(out), "--model", str(tiny_model)).returncode == 0
    with av.open(str(out)) as c:
        audio = c.streams.audio[0]
        first = next(p for p in c.demux(audio) if p.pts is not None)
        assert abs(float(first.pts * audio.time_base)) < 0.2  # audio starts with the video, not 1.4 s late
        assert float(c.duration / 1e6) < 3.5  # 36 frames at 12 fps, not 3 s + the offset


# --- finished MP4/MOV files are ordinary (moov first, real durations); --remux-only ---


def assert_ordinary(path, seconds: float) -> None:
    boxes = top_level_boxes(path)
    assert "moof" not in boxes, boxes  # not fragmented
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart: a browser knows the length first
    assert movie_seconds(path) == pytest.approx(seconds, abs=0.1)


def fragmented_partial(source, out, frames: int):
    """What Ctrl-C leaves: the first ``frames`` frames of ``source``, fragmented, with audio."""
    from fractions import Fraction

    from facecam.realtime.video_io import VideoWriter
    from facecam.realtime.video_reader import VideoReader

    with VideoReader(source) as reader:
        writer = VideoWriter(
            out, reader.fps, reader.width, reader.height, audio_from=source, time_base=reader.time_base
        )
        for i, frame in enumerate(reader.frames()):
            if i == frames:
                break
            writer.write(frame, timestamp=reader.take_frame_time(i))
    writer.mark_incomplete()
    writer.close(keep=True)
    assert "moof" in top_level_boxes(out) and movie_seconds(out) == 0
    return Fraction(frames) / reader.fps


@pytest.mark.parametrize("suffix", [".mp4", ".m4v", ".mov"])
def test_a_finished_mp4_or_mov_is_an_ordinary_faststart_file(tiny_model, clip, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    assert run_cli("facecam", "--video", str(clip), "--out", str(out), "--model", str(tiny_model)).returncode == 0
    assert_ordinary(out, 2.0)
    # Copied, not re-encoded: every frame at its time, the audio beside it (no edit-list shift).
    assert frame_times(out) == pytest.approx(frame_times(clip), abs=1e-3)
    assert probe(out)["audio"] == "aac"
    assert not list(tmp_path.glob(".*"))


def test_remux_only_makes_a_partial_file_ordinary_and_never_touches_the_input(clip, tmp_path):
    partial = tmp_path / "partial.mp4"
    fragmented_partial(clip, partial, frames=13)
    before = partial.read_bytes()
    fixed = tmp_path / "fixed.mp4"
    fixed.write_bytes(b"an older file, replaced only once the new one is complete")
    result = run_cli("facecam", "--video", str(partial), "--remux-only", "--out", str(fixed))
    assert result.returncode == 0, result.stderr
    assert "remuxed" in result.stderr and "model" not in result.stderr  # no model is loaded
    assert partial.read_bytes() == before
    assert_ordinary(fixed, 13 / 12)
    assert frame_times(fixed) == pytest.approx(frame_times(partial), abs=1e-3)
    assert probe(fixed)["frames"] == 13 and probe(fixed)["audio"] == "aac"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.mp4", "partial.mp4"]


def test_remux_only_bad_input_fails_cleanly_and_changes_nothing(clip, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    killed_early = tmp_path / "killed_early.mp4"  # killed before its first fragment was written
    fragmented_partial(clip, killed_early, frames=13)
    data = killed_early.read_bytes()
    killed_early.write_bytes(data[: data.index(b"moof") + 200])
    out = str(tmp_path / "fixed.mp4")
    cases = [
        (("--video", str(killed_early), "--remux-only", "--out", out), "not one complete frame"),
        (("--video", str(clip), "--remux-only"), "--out"),
        (("--camera", "0", "--remux-only", "--out", out), "--video"),
        (("--video", str(tmp_path / "nope.mp4"), "--remux-only", "--out", out), "does not exist"),
        (("--video", str(text), "--remux-only", "--out", out), "not a readable video"),
        (("--video", str(clip), "--remux-only", "--out", str(clip)), "is the input"),
        (("--video", str(clip), "--remux-only", "--out", str(tmp_path / "fixed.mkv")), "use one of .mp4"),
        (("--video", str(clip), "--remux-only", "--out", str(tmp_path / "no" / "fixed.mp4")), "does not exist"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, fragment in cases:
        assert_clean_error(run_cli("facecam", *args), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert probe(clip)["frames"] == 24

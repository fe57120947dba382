"""The public API: the README's example runs and gives the command's masks, bit for bit."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import facecam
from facecam.realtime import cli, runners
from facecam.realtime.passes import ANONYMIZE_FOLLOW_DETAIL, CROP_DETAIL
from facecam.realtime.reuse import ANONYMIZE_STILL_LEVELS, ANONYMIZE_STILL_REUSE, STILL_LEVELS, STILL_REUSE

README = Path(__file__).resolve().parents[1] / "README.md"
MAX_FRAMES = 40  # enough for several finder passes, tracking and smoothing; short for CI


def readme_example() -> str:
    section = README.read_text().split("## Use it from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def command_mask_frames(monkeypatch, tmp_path: Path, max_frames: int) -> list[np.ndarray]:
    """The frames `facecam --video SAMPLE --mode mask` hands its video encoder (before H.264's losses)."""
    written: list[np.ndarray] = []
    original = runners.VideoWriter.write

    def recording(self, frame, *args, **kwargs):
        written.append(frame.copy())
        return original(self, frame, *args, **kwargs)

    monkeypatch.setattr(runners.VideoWriter, "write", recording)
    argv = ["--video", str(facecam.SAMPLE_VIDEO), "--out", str(tmp_path / "m.mp4"), "--mode", "mask"]
    assert cli.main([*argv, "--no-display", "--max-frames", str(max_frames)]) == 0
    return written


def test_readme_example_gives_the_commands_masks(monkeypatch, tmp_path, capsys):
    # the example, limited to the first MAX_FRAMES frames so CI stays short
    limited = readme_example().replace(
        "facecam.video_frames(facecam.SAMPLE_VIDEO)",
        f"itertools.islice(facecam.video_frames(facecam.SAMPLE_VIDEO), {MAX_FRAMES})",
    )
    assert limited != readme_example(), "the README example no longer reads the sample clip"
    scope: dict = {}
    exec(compile("import itertools\n" + limited, "README example", "exec"), scope)
    assert f"{MAX_FRAMES} frames; " in capsys.readouterr().out
    ours = scope["masks"]
    theirs = command_mask_frames(monkeypatch, tmp_path, MAX_FRAMES)
    assert len(ours) == len(theirs) == MAX_FRAMES
    worst = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(ours, theirs, strict=True))
    assert worst <= 1, f"the API's mask differs from the command's by {worst} grey levels"
    assert any(m.max() == 255 for m in ours) and all(m.min() == 0 for m in ours)


def test_mask_and_faces_describe_the_same_face(tmp_path):
    frames = list(facecam.video_frames(facecam.SAMPLE_VIDEO))[:5]
    with facecam.FaceStream(mode="blur") as stream:
        results = [stream.process(f) for f in frames]
    last = results[-1]
    assert last.mask.shape == frames[-1].shape[:2] and last.mask.dtype == np.float32
    assert last.image.shape == frames[-1].shape and last.image.dtype == np.uint8
    assert [r.index for r in results] == list(range(5))
    face = max(last.faces, key=lambda box: box.size)
    inside = last.mask[int(face.y0) : int(face.y1), int(face.x0) : int(face.x1)]
    assert inside.mean() > 0.5 > last.mask.mean()
    assert not np.array_equal(last.image, frames[-1])  # the background is blurred


def test_reset_forgets_the_stream():
    frames = list(facecam.video_frames(facecam.SAMPLE_VIDEO))[:3]
    with facecam.FaceStream(mode="mask", smoothing=0.9) as stream:
        first = stream.process(frames[0])
        stream.process(frames[1])
        stream.reset()
        again = stream.process(frames[0])
    assert again.index == 0
    np.testing.assert_array_equal(first.mask, again.mask)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"mode": "sparkle"}, "mode"),
        ({"smoothing": 1.5}, "smoothing"),
        ({"fps": 0}, "fps"),
        ({"anonymize_margin": 3}, "anonymize_margin"),
        ({"model": "no_such_model"}, "no_such_model"),
    ],
)
def test_bad_arguments_are_one_line_errors_naming_the_argument(kwargs, named):
    with pytest.raises(facecam.FacecamError) as caught:
        facecam.FaceStream(**kwargs)
    message = str(caught.value)
    assert named in message and "\n" not in message and "--" not in message


@pytest.mark.parametrize(
    "frame",
    [np.zeros((64, 64), np.uint8), np.zeros((64, 64, 3), np.float32), np.zeros((1, 64, 3), np.uint8), "a frame"],
)
def test_a_frame_that_is_not_a_bgr_image_is_refused(frame):
    with facecam.FaceStream(mode="mask", verifier=None) as stream:
        with pytest.raises(facecam.FacecamError, match="frame"):
            stream.process(frame)


def test_a_shared_segmenter_stays_open_after_its_streams_close():
    from facecam.realtime.segmenter import Segmenter

    frame = np.zeros((120, 160, 3), np.uint8)
    with Segmenter(provider="cpu") as shared:
        for mode in ("mask", "blur"):
            with facecam.FaceStream(mode=mode, segmenter=shared, verifier=None) as stream:
                stream.process(frame)
        assert shared.session is not None


def sample_frames(count: int) -> list[np.ndarray]:
    import itertools

    return list(itertools.islice(facecam.video_frames(facecam.SAMPLE_VIDEO), count))


def covered(result, box) -> float:
    """Share of ``box`` (the face as tracked in the same-size stream) the anonymize alpha covers."""
    x0, y0, x1, y1 = (int(v) for v in (box.x0, box.y0, box.x1, box.y1))
    return float((result.mask[y0:y1, x0:x1] >= 0.5).mean())


def test_a_new_frame_size_is_a_cut_and_the_face_stays_covered():
    """A call's video changes resolution with the bandwidth: the crops of the old size would miss."""
    frames = sample_frames(12)
    big = [cv2.resize(f, None, fx=2, fy=2) for f in frames]
    with facecam.FaceStream(mode="anonymize") as switched, facecam.FaceStream(mode="anonymize") as steady:
        for i, frame in enumerate(frames):
            expected = steady.process(big[i])
            got = switched.process(frame if i < 8 else big[i])
            if i >= 8:
                face = max(expected.faces, key=lambda b: b.size)
                assert covered(got, face) > 0.9, f"frame {i}: the face is not covered after the size changed"


def test_switching_modes_keeps_the_faces_and_looks_as_the_new_mode_needs():
    frames = sample_frames(6)
    with facecam.FaceStream(mode="blur") as stream:
        for frame in frames[:4]:
            stream.process(frame)
        tracks = list(stream.finder.tracker.tracks)
        stream.mode = "anonymize"
        stream.mode = "anonymize"  # setting it again changes nothing
        result = stream.process(frames[4])
        assert stream.finder.tracker.tracks and stream.finder.tracker.tracks[0] is tracks[0]
        assert stream.finder.verify_threshold == 0.2 and stream.finder.fine_every == 12
        assert (stream.finder.still_reuse, stream.finder.still_levels) == (
            ANONYMIZE_STILL_REUSE,
            ANONYMIZE_STILL_LEVELS,
        )
        assert stream.finder.follow_detail == ANONYMIZE_FOLLOW_DETAIL
        assert result.mask.max() == 1.0
        stream.settings.mode = "blur"  # as the camera window's keys do
        stream.process(frames[5])
        assert stream.finder.verify_threshold == 0.5 and stream.finder.follow_detail == CROP_DETAIL
        assert (stream.finder.still_reuse, stream.finder.still_levels) == (STILL_REUSE, STILL_LEVELS)

"""Library arguments are checked where they are taken, in words of the argument (not of a CLI
flag); a video that states no frame rate gets 30 fps, and says so."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import assert_clean_error, run_cli

from facecam.errors import FacecamError
from facecam.realtime import runners, video_reader
from facecam.realtime.compose import ComposeSettings
from facecam.realtime.drawing import draw
from facecam.realtime.segmenter import Segmenter


@pytest.mark.parametrize("sigma", [0, -1, 101, float("nan"), "8"])
def test_a_blur_sigma_out_of_range_names_the_argument(sigma):
    with pytest.raises(FacecamError, match=r"^blur_sigma must be above 0 and at most 100 \(pixels\), got "):
        ComposeSettings(mode="blur", blur_sigma=sigma)


def test_the_blur_sigma_range_is_the_one_that_draws():
    frame, alpha = np.full((48, 64, 3), 90, np.uint8), np.zeros((48, 64), np.float32)
    for sigma in (0.01, 100):
        assert draw(frame, alpha, ComposeSettings(mode="blur", blur_sigma=sigma)).shape == frame.shape


@pytest.mark.parametrize(
    ("background", "fragment"),
    [
        ((0, 0), "background colour must be three integers 0..255"),
        ((0, 0, 300), "background colour must be three integers 0..255"),
        ("green", "background colour"),  # a name is parse_background's to turn into a colour
        (np.zeros((10, 10), np.uint8), r"background image must be an \(H, W, 3\) uint8"),
        (np.zeros((10, 10, 3), np.float32), r"background image must be an \(H, W, 3\) uint8"),
    ],
)
def test_a_background_that_cannot_be_drawn_is_refused_when_given(background, fragment):
    with pytest.raises(FacecamError, match=fragment):
        ComposeSettings(mode="replace", background=background)


def test_the_cli_still_names_its_flag(tiny_model, clip, tmp_path):
    out = str(tmp_path / "o.mp4")
    result = run_cli("facecam", "--video", str(clip), "--out", out, "--blur-sigma", "0", "--model", str(tiny_model))
    assert_clean_error(result, "--blur-sigma")


def test_frame_rate_is_the_stated_one_or_an_assumed_30():
    assert video_reader.frame_rate(Fraction(30000, 1001), Fraction(25)) == (Fraction(30000, 1001), False)
    assert video_reader.frame_rate(None, Fraction(25)) == (Fraction(25), False)
    assert video_reader.frame_rate(Fraction(0), None) == (Fraction(30), True)
    assert video_reader.frame_rate(None, None) == (Fraction(30), True)


def test_a_video_without_a_frame_rate_says_30_fps_is_assumed(tiny_model, clip, tmp_path, monkeypatch, capsys):
    stated = video_reader.frame_rate
    monkeypatch.setattr(video_reader, "frame_rate", lambda average, guessed: stated(None, None))  # as a raw stream
    out = tmp_path / "out.mp4"
    with Segmenter(tiny_model) as seg:
        runners.run_video(seg, clip, out, runners.JobOptions(ComposeSettings("mask")))
    notices = [ln for ln in capsys.readouterr().err.splitlines() if "frame rate" in ln]
    assert notices == [f"facecam: {clip} states no frame rate; 30 fps assumed"]
    with av.open(str(out)) as container:
        assert container.metadata.get("comment") == "the source states no frame rate; 30 fps assumed"


def test_a_video_with_a_frame_rate_says_nothing_about_it(tiny_model, clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    with Segmenter(tiny_model) as seg:
        runners.run_video(seg, clip, out, runners.JobOptions(ComposeSettings("mask")))
    assert "frame rate" not in capsys.readouterr().err
    with av.open(str(out)) as container:
        assert "comment" not in container.metadata

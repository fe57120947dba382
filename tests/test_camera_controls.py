"""Camera controls: index, device path or URL; size and rate asked of the driver; the platform's
capture API; the OS camera permission in the error; the reader without Unix-only calls.

A stand-in for ``cv2.VideoCapture`` records how it was opened and what it was asked, and
delivers frames of the size a driver chose, which need not be the one asked for.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import probe

from facecam.errors import CameraError
from facecam.realtime import cli, runners
from facecam.realtime.camera import CameraReader, CameraSource, capture_backends, open_failure_hint
from facecam.realtime.camera_options import camera_fps, camera_location, camera_size


class FakeCapture:
    """``cv2.VideoCapture`` as a driver: opens unless its API is refused, ignores sizes it lacks."""

    log: list[tuple] = []
    refuse: set[int] = set()  # capture APIs that do not open the camera
    delivers = (640, 480)  # what the driver sends whatever was asked
    fps = 30.0

    def __init__(self, location, api=cv2.CAP_ANY):
        FakeCapture.log.append(("open", location, api))
        self.opened = api not in FakeCapture.refuse
        self.count = 0

    def isOpened(self):  # noqa: N802 (OpenCV's name)
        return self.opened

    def release(self):
        pass

    def set(self, prop, value):
        FakeCapture.log.append(("set", prop, value))
        return True

    def get(self, prop):
        return FakeCapture.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        time.sleep(1 / 100)
        self.count += 1
        width, height = FakeCapture.delivers
        return True, np.full((height, width, 3), self.count % 256, np.uint8)


@pytest.fixture
def fake_capture(monkeypatch):
    FakeCapture.log = []
    FakeCapture.refuse = set()
    FakeCapture.delivers = (640, 480)
    FakeCapture.fps = 30.0
    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    return FakeCapture


def test_size_and_rate_are_asked_of_the_driver_and_what_it_delivers_is_reported(fake_capture):
    with CameraReader(CameraSource(0, size=(1280, 720), fps=60.0)) as cam:
        assert cam.read() is not None
        assert cam.frame_size == (640, 480) and cam.fps == 30.0
        line = cam.delivery()
    assert fake_capture.log[1:] == [
        ("set", cv2.CAP_PROP_FRAME_WIDTH, 1280),
        ("set", cv2.CAP_PROP_FRAME_HEIGHT, 720),
        ("set", cv2.CAP_PROP_FPS, 60.0),
    ]
    assert line == "camera 0 delivers 640x480 at 30 fps (asked for 1280x720 at 60 fps)"


def test_nothing_is_asked_unless_given_and_an_unstated_rate_is_said(fake_capture):
    fake_capture.fps = 0.0  # a driver that does not say
    with CameraReader(0) as cam:
        line = cam.delivery()
        assert cam.fps == 30.0
    assert [entry for entry in fake_capture.log if entry[0] == "set"] == []
    assert line == "camera 0 delivers 640x480 at an unstated rate (30 fps assumed)"


def test_cli_passes_camera_size_and_fps_to_the_capture(fake_capture, tiny_model, capsys):
    fake_capture.delivers = (320, 240)
    argv = ["--camera", "0", "--camera-size", "320x240", "--camera-fps", "25", "--no-display", "--max-frames", "3"]
    assert cli.main([*argv, "--model", str(tiny_model)]) == 0
    err = capsys.readouterr().err
    assert ("set", cv2.CAP_PROP_FRAME_WIDTH, 320) in fake_capture.log
    assert ("set", cv2.CAP_PROP_FRAME_HEIGHT, 240) in fake_capture.log
    assert ("set", cv2.CAP_PROP_FPS, 25.0) in fake_capture.log
    # the driver gave the size but not the rate: said so
    assert "camera 0 delivers 320x240 at 30 fps (asked for 25 fps)" in err


def test_cli_opens_a_stream_url_with_opencvs_own_choice(fake_capture, tiny_model):
    url = "rtsp://192.0.2.7:554/stream1"
    assert cli.main(["--camera", url, "--no-display", "--max-frames", "2", "--model", str(tiny_model)]) == 0
    assert fake_capture.log[0] == ("open", url, cv2.CAP_ANY)


@pytest.mark.parametrize(
    "platform, location, expected",
    [
        ("win32", 0, [cv2.CAP_DSHOW, cv2.CAP_MSMF]),
        ("darwin", 1, [cv2.CAP_AVFOUNDATION]),
        ("linux", 0, [cv2.CAP_V4L2]),
        ("linux", "/dev/video2", [cv2.CAP_V4L2]),
        ("linux", "rtsp://cam/stream", [cv2.CAP_ANY]),
        ("win32", "http://cam/video.mjpg", [cv2.CAP_ANY]),
        ("darwin", "/tmp/clip.mp4", [cv2.CAP_ANY]),
        ("freebsd14", 0, [cv2.CAP_ANY]),
    ],
)
def test_capture_api_per_platform(platform, location, expected):
    assert capture_backends(location, platform) == expected


def test_windows_falls_back_to_media_foundation(fake_capture, monkeypatch):
    monkeypatch.setattr(sys, "platform", "win32")
    fake_capture.refuse = {cv2.CAP_DSHOW}
    with CameraReader(0) as cam:
        assert cam.read() is not None
    opens = [entry for entry in fake_capture.log if entry[0] == "open"]
    assert opens == [("open", 0, cv2.CAP_DSHOW), ("open", 0, cv2.CAP_MSMF)]


@pytest.mark.parametrize(
    "platform, where",
    [
        ("darwin", "System Settings > Privacy & Security > Camera"),
        ("win32", "Settings > Privacy > Camera"),
    ],
)
def test_a_camera_that_does_not_open_names_the_os_permission(fake_capture, monkeypatch, platform, where):
    monkeypatch.setattr(sys, "platform", platform)
    fake_capture.refuse = {cv2.CAP_DSHOW, cv2.CAP_MSMF, cv2.CAP_AVFOUNDATION}
    with pytest.raises(CameraError, match="does not open") as caught:
        CameraReader(0, retries=0).start()
    assert where in str(caught.value) and "\n" not in str(caught.value)
    assert where in open_failure_hint(0, platform)
    assert "Privacy" not in open_failure_hint("rtsp://cam/stream", platform)  # a network camera: not the OS's


def test_cli_camera_that_does_not_open_is_one_line(fake_capture, monkeypatch, tiny_model, capsys):
    monkeypatch.setattr(sys, "platform", "darwin")
    fake_capture.refuse = {cv2.CAP_AVFOUNDATION}
    assert cli.main(["--camera", "1", "--no-display", "--model", str(tiny_model)]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert len(errors) == 1 and "camera 1 does not open" in errors[0] and "Privacy & Security" in errors[0]


def test_camera_location_accepts_index_device_path_and_url(tmp_path):
    device = tmp_path / "video2"
    device.touch()
    assert camera_location("0") == 0 and camera_location(" 3 ") == 3
    assert camera_location(str(device)) == str(device)
    for url in ("rtsp://user:pw@192.0.2.7/stream", "http://cam/video.mjpg", "HTTPS://cam/x"):
        assert camera_location(url) == url
    for bad in ("one", "-1", "", "ftp://cam/x", str(tmp_path / "missing")):
        with pytest.raises(argparse.ArgumentTypeError, match="not a camera index"):
            camera_location(bad)


def test_camera_size_and_fps_values():
    assert camera_size("1280x720") == (1280, 720) and camera_size("640X480") == (640, 480)
    for bad in ("1280", "1280x", "axb", "1280x720x3", "-640x480", "8x8", "99999x720"):
        with pytest.raises(argparse.ArgumentTypeError):
            camera_size(bad)
    assert camera_fps("30") == 30.0 and camera_fps("29.97") == 29.97
    for bad in ("0", "-5", "nan", "inf", "241", "fast"):
        with pytest.raises(argparse.ArgumentTypeError):
            camera_fps(bad)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--camera", "0", "--camera-size", "big"], "must be WIDTHxHEIGHT"),
        (["--camera", "0", "--camera-fps", "0"], "within 1..240"),
        (["--camera", "one"], "not a camera index"),
    ],
)
def test_bad_camera_flags_are_one_line(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.parser().parse_args(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(err) == 1 and fragment in err[0]


def test_camera_flags_without_a_camera_are_refused(tmp_path, capsys, clip):
    for flag in (["--camera-size", "640x480"], ["--camera-fps", "30"], ["--virtual-camera"], ["--mirror"]):
        code = cli.main(["--video", str(clip), "--no-display", "--out", str(tmp_path / "x.mp4"), *flag])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"{flag[0]} only applies to a live camera" in err[0]


def test_camera_reader_and_recording_without_unix_only_calls(tmp_path, monkeypatch, clip, tiny_model):
    """As on Windows: no pthread_sigmask, statvfs, SIGHUP or SIGKILL (see test_portable)."""
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)  # on Linux it is built on statvfs
    for module, name in ((signal, "pthread_sigmask"), (os, "statvfs"), (signal, "SIGHUP"), (signal, "SIGKILL")):
        monkeypatch.delattr(module, name, raising=False)
    with CameraReader(str(clip), retries=0) as cam:
        frames = 0
        while cam.read(timeout=1.0) is not None:
            frames += 1
    assert frames > 0 and cam.frame_size == (160, 120)
    # the camera job with its recording; the clip replays on re-open, as a camera goes on
    monkeypatch.setattr(runners, "CameraReader", lambda source: CameraReader(str(clip)))
    out = tmp_path / "rec.mp4"
    argv = ["--camera", "0", "--no-display", "--out", str(out), "--max-frames", "8", "--model", str(tiny_model)]
    assert cli.main(argv) == 0
    assert probe(out)["frames"] == 8

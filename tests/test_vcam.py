"""The virtual camera: the constant-rate pacer, the pyvirtualcam sink, and its errors.

The pacer is driven with a simulated clock (exact, whatever the machine's load) and once
with real threads; the sink with a stand-in pyvirtualcam module, and with a real
v4l2loopback device where the machine has one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import assert_clean_error, draw_face_frame, run_cli, write_clip

from facecam.realtime import cli, runners
from facecam.realtime.camera import CameraReader, PacedFrames
from facecam.realtime.vcam import FramePacer, VirtualCameraError, VirtualCameraSink, to_camera_frame

FPS = 30.0
PERIOD = 1 / FPS


def simulate(pacer: FramePacer, clock: list[float], submits: list[tuple[float, object]], until: float):
    """Run ``pacer`` in simulated time: its thread wakes when poll() asks or a frame is submitted.

    ``submits``: (time, frame) in time order. Returns the (time, frame) of every emission.
    """
    sent: list[tuple[float, object]] = []
    pending = list(submits)
    wake = 0.0
    while True:
        t = min(wake, pending[0][0]) if pending else wake
        if t > until:
            return sent
        clock[0] = t
        while pending and pending[0][0] <= t:
            pacer.submit(pending.pop(0)[1])
        wake = t + pacer.poll()


def recording_pacer(clock: list[float], sent_log: list | None = None, **kw) -> tuple[FramePacer, list]:
    sent = [] if sent_log is None else sent_log
    pacer = FramePacer(lambda frame: sent.append((clock[0], frame)), FPS, clock=lambda: clock[0], **kw)
    return pacer, sent


def test_pacer_sends_every_frame_once_when_the_pipeline_keeps_up():
    clock = [0.0]
    pacer, sent = recording_pacer(clock)
    rng = np.random.default_rng(1)
    # frames at the camera's rate with jitter of up to a fifth of a period either way
    submits = [(i * PERIOD + rng.uniform(-0.2, 0.2) * PERIOD + 1.0, i) for i in range(300)]
    simulate(pacer, clock, submits, until=submits[-1][0] + PERIOD / 2)
    frames = [f for _, f in sent]
    assert frames == list(range(300))  # each frame once, in order: never the same one twice in a row
    assert pacer.repeated == 0 and pacer.skipped == 0
    gaps = np.diff([t for t, _ in sent])
    assert gaps.min() > 0.5 * PERIOD and gaps.max() < 1.5 * PERIOD
    assert abs(gaps.mean() - PERIOD) < 0.01 * PERIOD


def test_pacer_repeats_the_last_frame_at_the_constant_rate_while_the_pipeline_is_late():
    clock = [0.0]
    pacer, sent = recording_pacer(clock)
    # 30 frames on time, then nothing for 10 periods (a slow full-frame pass), then on time again
    times = [i * PERIOD for i in range(30)] + [(40 + i) * PERIOD for i in range(30)]
    submits = [(t, i) for i, t in enumerate(times)]
    simulate(pacer, clock, submits, until=times[-1] + PERIOD / 2)
    frames = [f for _, f in sent]
    stall = [f for t, f in sent if times[29] < t < times[30]]
    assert stall and set(stall) == {29}  # the last frame again, never a gap
    assert pacer.repeated == len(stall) >= 9
    assert frames[frames.index(29) + len(stall) + 1 :] == list(range(30, 60))  # fresh frames again
    gaps = np.diff([t for t, _ in sent])
    # constant rate: no interval beyond a period and the grace (a repeat waits that long for a late frame)
    assert gaps.max() <= (1 + pacer.grace) * PERIOD + 1e-9 and gaps.min() >= (1 - pacer.grace) * PERIOD - 1e-9
    assert len(sent) == pytest.approx((times[-1] - times[0]) / PERIOD + 1, abs=1)


def test_pacer_sends_the_newest_frame_when_the_pipeline_is_faster():
    clock = [0.0]
    pacer, sent = recording_pacer(clock)
    submits = [(i * PERIOD / 2, i) for i in range(200)]  # twice the camera rate
    simulate(pacer, clock, submits, until=submits[-1][0])
    frames = [f for _, f in sent]
    assert (np.diff(frames) > 0).all()  # the newest each time, never one twice
    assert pacer.repeated == 0 and pacer.skipped > 90
    assert len(sent) == pytest.approx(submits[-1][0] / PERIOD + 1, abs=1)


def test_pacer_does_not_burst_after_a_stall():
    """A device that blocked for three periods: the schedule restarts instead of catching up."""
    clock = [0.0]
    sent: list[float] = []

    def slow_emit(frame):
        sent.append(clock[0])
        if len(sent) == 5:
            clock[0] += 3 * PERIOD  # this send took three periods

    pacer = FramePacer(slow_emit, FPS, clock=lambda: clock[0])
    pacer.submit("frame")
    while clock[0] < 20 * PERIOD:
        wait = pacer.poll()  # (poll's slow send moves the clock: read it after)
        clock[0] += wait  # the thread sleeps what poll says, from when poll returned
    gaps = np.diff(sent)
    assert gaps.min() >= (1 - pacer.grace) * PERIOD - 1e-9


def test_pacer_thread_never_blocks_the_producer_and_keeps_the_rate():
    release = threading.Event()
    sent: list[tuple[float, int]] = []

    def emit(frame):
        if not release.is_set() and frame == 3:
            release.wait(5)  # a device that hangs while frame 3 goes out
        sent.append((time.monotonic(), frame))

    pacer = FramePacer(emit, fps=50).start()
    try:
        waits = []
        for i in range(20):
            t0 = time.perf_counter()
            pacer.submit(i)
            waits.append(time.perf_counter() - t0)
            time.sleep(0.01)
        assert max(waits) < 0.05  # submit returned while emit hung
        release.set()
        time.sleep(0.5)  # no new frame: the last one goes out again, about every 20 ms
    finally:
        pacer.close()
    after = [f for t, f in sent if f == 19]
    assert len(after) >= 5 and pacer.repeated >= 4
    assert pacer.skipped > 0  # the frames submitted while the device hung were replaced, not queued


def test_pacer_passes_a_device_error_to_the_producer():
    def emit(frame):
        raise RuntimeError("device gone")

    pacer = FramePacer(emit, fps=100).start()
    try:
        pacer.submit(0)
        deadline = time.monotonic() + 5
        while pacer.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(RuntimeError, match="device gone"):
            pacer.submit(1)
    finally:
        pacer.close()


def test_pacer_refuses_a_rate_of_zero():
    with pytest.raises(VirtualCameraError, match="frame rate"):
        FramePacer(lambda f: None, 0)


def test_camera_frame_is_rgb_at_the_opened_size():
    bgr = np.zeros((48, 64, 3), np.uint8)
    bgr[..., 0] = 200  # blue
    out = to_camera_frame(bgr, (64, 48))
    assert out.shape == (48, 64, 3) and out.flags.c_contiguous and out is not bgr
    assert (out[..., 2] == 200).all() and (out[..., :2] == 0).all()
    assert to_camera_frame(np.zeros((96, 128, 3), np.uint8), (64, 48)).shape == (48, 64, 3)
    assert to_camera_frame(np.zeros((24, 32, 3), np.uint8), (64, 48)).shape == (48, 64, 3)


class FakeVirtualCamera:
    """pyvirtualcam.Camera's interface, recording what it is sent and when."""

    instances: list[FakeVirtualCamera] = []
    refuse: str | None = None  # a message: Camera() raises RuntimeError, as with no device

    def __init__(self, width, height, fps, *, fmt=None, device=None, backend=None, print_fps=False):
        if FakeVirtualCamera.refuse:
            raise RuntimeError(FakeVirtualCamera.refuse)
        self.width, self.height, self.fps, self.fmt = width, height, fps, fmt
        self.device = device or "/dev/video42"
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []
        self.closed = False
        FakeVirtualCamera.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        assert frame.shape == (self.height, self.width, 3) and frame.dtype == np.uint8
        self.frames.append(frame.copy())
        self.times.append(time.monotonic())

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_pyvirtualcam(monkeypatch):
    module = types.ModuleType("pyvirtualcam")
    module.Camera = FakeVirtualCamera
    module.PixelFormat = types.SimpleNamespace(RGB="RGB", BGR="BGR")
    FakeVirtualCamera.instances = []
    FakeVirtualCamera.refuse = None
    monkeypatch.setitem(sys.modules, "pyvirtualcam", module)
    return FakeVirtualCamera


def test_sink_sends_rgb_frames_of_the_opened_size_at_a_constant_rate(fake_pyvirtualcam):
    with VirtualCameraSink((64, 48), fps=50) as sink:
        for i in range(10):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[..., 0] = 10 + i  # blue channel numbers the frame
            sink.submit(frame)
            time.sleep(0.02)
        time.sleep(0.3)  # the pipeline stops: the camera goes on at its rate
    cam = fake_pyvirtualcam.instances[0]
    assert cam.fmt == "RGB" and (cam.width, cam.height, cam.fps) == (64, 48, 50) and cam.closed
    blue_in_rgb = [int(f[0, 0, 2]) for f in cam.frames]
    assert all(f[..., :2].max() == 0 for f in cam.frames)  # red and green empty: the channels were swapped
    assert blue_in_rgb[-1] == 19 and blue_in_rgb.count(19) >= 8  # the last frame repeated, 20 ms apart
    assert len(cam.frames) >= 20
    gaps = np.diff(cam.times)
    assert np.median(gaps) == pytest.approx(0.02, abs=0.006)


def paced_camera(monkeypatch, fps: float = 30.0) -> None:
    """Moving synthetic frames at ``fps`` in real time stand in for camera 0 (ten seconds of them)."""
    frames = [draw_face_frame(i / 8) for i in range(int(10 * fps))]
    monkeypatch.setattr(runners, "CameraReader", lambda source: PacedFrames(frames, fps=fps))


def test_cli_sends_the_composed_camera_to_the_virtual_camera(fake_pyvirtualcam, monkeypatch, tiny_model, capsys):
    paced_camera(monkeypatch, fps=20)
    argv = ["--camera", "0", "--virtual-camera", "--no-display", "--mode", "blur", "--model", str(tiny_model)]
    assert cli.main([*argv, "--max-frames", "20"]) == 0
    err = capsys.readouterr().err
    cam = fake_pyvirtualcam.instances[0]
    assert (cam.width, cam.height, cam.fps) == (160, 120, 20) and cam.closed  # the camera's size and rate
    assert len(cam.frames) >= 10
    assert "camera paced frames delivers 160x120 at 20 fps" in err
    assert "sending to virtual camera /dev/video42 at a constant 20 fps" in err
    assert f"virtual camera: {len(cam.frames)} frames sent" in err


def test_mirror_flips_the_preview_only(fake_pyvirtualcam, monkeypatch, tiny_model):
    paced_camera(monkeypatch)
    shown: list[np.ndarray] = []
    monkeypatch.setattr(runners, "open_window", lambda: None)
    monkeypatch.setattr(cv2, "imshow", lambda name, view: shown.append(view.copy()))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: -1)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    argv = ["--camera", "0", "--virtual-camera", "--mode", "blur", "--model", str(tiny_model), "--max-frames", "12"]
    for mirror in (False, True):
        shown.clear()
        fake_pyvirtualcam.instances.clear()
        assert cli.main(argv + ["--mirror"] * mirror) == 0
        sent = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR)[40:] for f in fake_pyvirtualcam.instances[0].frames]
        views = [v[40:] for v in shown]  # below the FPS read-out
        expected = [np.ascontiguousarray(v[:, ::-1]) for v in views] if mirror else views
        # every frame sent to the call is the camera's view; the window showed its mirror image when asked
        assert any(any(np.array_equal(s, e) for e in expected) for s in sent), mirror
        if mirror:
            assert not any(any(np.array_equal(s, v) for v in views) for s in sent)


def fake_module_dir(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "fake_modules"
    folder.mkdir()
    (folder / "pyvirtualcam.py").write_text(body)
    return folder


def test_cli_without_pyvirtualcam_says_how_to_install_it(tmp_path, monkeypatch, tiny_model):
    folder = fake_module_dir(tmp_path, "raise ImportError('No module named pyvirtualcam')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    result = run_cli("facecam", "--camera", "0", "--virtual-camera", "--no-display", "--model", str(tiny_model))
    assert result.returncode == 2
    assert_clean_error(result, 'pip install "facecam[vcam]"')
    if sys.platform.startswith("linux"):
        assert "modprobe v4l2loopback devices=1 exclusive_caps=1" in result.stderr


def test_cli_without_a_virtual_camera_device_says_how_to_get_one(fake_pyvirtualcam, monkeypatch, tiny_model, capsys):
    paced_camera(monkeypatch)
    fake_pyvirtualcam.refuse = "'v4l2loopback' backend: No v4l2 loopback device found at /dev/video[0-99].\nsecond"
    code = cli.main(["--camera", "0", "--virtual-camera", "--no-display", "--model", str(tiny_model)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("facecam: error")]
    assert code == 2 and len(err) == 1
    assert "No v4l2 loopback device found" in err[0] and "second" in err[0]
    assert "modprobe" in err[0] or "OBS" in err[0]


def loopback_devices() -> list[str]:
    """/dev/videoN devices made by v4l2loopback: the only video devices with no hardware behind them
    (sysfs puts them under /sys/devices/virtual)."""
    entries = sorted(Path("/sys/class/video4linux").glob("video*"))
    return [f"/dev/{e.name}" for e in entries if "/virtual/" in str(e.resolve()) and Path(f"/dev/{e.name}").exists()]


def real_pyvirtualcam():
    try:
        import pyvirtualcam
    except ImportError:
        return None
    return pyvirtualcam


def test_real_pyvirtualcam_without_a_device_is_one_line(monkeypatch, tiny_model, capsys):
    if real_pyvirtualcam() is None:
        pytest.skip('pyvirtualcam is not installed (pip install "facecam[vcam]")')
    if loopback_devices():
        pytest.skip("this machine has a v4l2loopback device; the missing-device error cannot happen")
    paced_camera(monkeypatch)
    code = cli.main(["--camera", "0", "--virtual-camera", "--no-display", "--model", str(tiny_model)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("facecam: error")]
    assert code == 2 and len(err) == 1 and "no virtual camera" in err[0]
    assert "modprobe v4l2loopback" in err[0] or "OBS" in err[0]


def test_real_v4l2loopback_device_receives_the_frames(tmp_path):
    if real_pyvirtualcam() is None:
        pytest.skip('pyvirtualcam is not installed (pip install "facecam[vcam]")')
    devices = loopback_devices()
    if not devices:
        pytest.skip(
            "no v4l2loopback device (/dev/video* from the v4l2loopback module); "
            "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 makes one"
        )
    clip_path = write_clip(tmp_path / "c.mp4", frames=2, size=(240, 320), audio=False)
    with CameraReader(str(clip_path), retries=0) as source:
        frame = source.read()
    with VirtualCameraSink((320, 240), fps=30, device=devices[0]) as sink:
        sink.submit(frame)
        time.sleep(0.2)
        reader = cv2.VideoCapture(devices[0], cv2.CAP_V4L2)
        try:
            got = None
            for _ in range(30):
                ok, image = reader.read()
                if ok:
                    got = image
                    break
                time.sleep(0.05)
        finally:
            reader.release()
    assert got is not None, f"nothing could be read back from {devices[0]}"
    assert got.shape[:2] == (240, 320)
    # through the device's YUV format and back: the colours within a few grey levels
    assert np.abs(got.astype(int) - frame.astype(int)).mean() < 12

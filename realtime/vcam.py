"""The virtual camera: the composed frames to a call app (Zoom, Meet, Teams) at a constant rate.

Call apps drop or never start a stream whose frames arrive irregularly (backscrub's users:
Teams shows the preview but never streams), and a face pipeline's output is irregular: a
full-frame pass or a busy CPU makes one frame late. So the frames go out from their own
thread, :class:`FramePacer`, one every 1/fps seconds: a frame that is late by more than a
quarter of a period is replaced by the last frame sent again, and the pipeline never waits
for the virtual camera. The frames are sent through ``pyvirtualcam`` (v4l2loopback on Linux,
OBS Virtual Camera on Windows and macOS), an optional extra imported only when used.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import cv2
import numpy as np

from facecam.errors import FacecamError, one_line

#: a fresh frame is waited for this share of a period past its time before the last one is
#: repeated: a frame a little late still goes out (no repeat, then no dropped frame after it)
GRACE = 0.25


class VirtualCameraError(FacecamError):
    """No pyvirtualcam, no virtual camera device, or the device failed while sending."""


def virtual_camera_help(platform: str | None = None) -> str:
    """How to get a virtual camera device on ``platform`` (``sys.platform`` when not given), in one line."""
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return (
            "create one with: sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback devices=1 "
            'exclusive_caps=1 card_label="facecam"'
        )
    return "install OBS Studio (obsproject.com) and start its Virtual Camera once (Start, then Stop Virtual Camera)"


def load_pyvirtualcam():
    """The pyvirtualcam module; VirtualCameraError saying how to install it when it is missing."""
    try:
        import pyvirtualcam
    except ImportError as exc:
        raise VirtualCameraError(
            f'a virtual camera needs pyvirtualcam: pip install "facecam[vcam]"; then {virtual_camera_help()}'
        ) from exc
    return pyvirtualcam


def open_virtual_camera(width: int, height: int, fps: float, device: str | None = None):
    """A ``pyvirtualcam.Camera`` taking RGB frames of ``width`` x ``height``; VirtualCameraError,
    saying how to get one, when there is no device (or not the one named)."""
    pyvirtualcam = load_pyvirtualcam()
    try:
        return pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB, device=device or None)
    except (RuntimeError, OSError, ValueError) as exc:
        # pyvirtualcam tries each backend and raises one RuntimeError listing every refusal, one a line
        # (an empty one where the platform has no backend at all).
        why = one_line(exc) if str(exc).strip() else "pyvirtualcam has no backend on this system"
        name = f" {device}" if device else ""
        raise VirtualCameraError(f"no virtual camera{name} to send to ({why}); {virtual_camera_help()}") from exc


def to_camera_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A BGR frame as the virtual camera takes it: RGB, ``size`` = (width, height), a new
    C-contiguous array (it is sent again when the next frame is late, so nobody may write to it)."""
    height, width = frame.shape[:2]
    if (width, height) != tuple(size):
        # a camera re-opened at another size mid-call: the device keeps the size it was opened with
        shrink = width > size[0] or height > size[1]
        frame = cv2.resize(frame, tuple(size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class FramePacer:
    """Calls ``emit(frame)`` every 1/``fps`` seconds from its own thread with the newest frame
    given to :meth:`submit`, or the last one again when no new frame came in time.

    ``submit`` never waits for ``emit``: it stores the frame and returns. A frame due at t is
    sent at t when it is there, else as soon as it comes up to t + GRACE periods, else the
    last frame is sent again at t + GRACE periods (``repeated``). Frames replaced before they
    were sent are counted in ``skipped``. After a stall of more than a period (a slow device,
    a suspended laptop) the schedule starts again from now instead of sending a burst.
    :meth:`poll` is one step of the thread's loop, for tests that drive it with their own clock.
    """

    def __init__(
        self,
        emit: Callable[[np.ndarray], None],
        fps: float,
        clock: Callable[[], float] = time.monotonic,
        grace: float = GRACE,
    ) -> None:
        if not 0 < fps < float("inf"):
            raise VirtualCameraError(f"a virtual camera needs a frame rate > 0, got {fps}")
        self.period = 1.0 / fps
        self.grace = grace
        self.emitted = 0
        self.repeated = 0
        self.skipped = 0
        self._emit = emit
        self._clock = clock
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._seq = 0  # frames submitted
        self._sent_seq = 0  # the submitted frame last emitted
        self._due: float | None = None  # when the next frame goes out; None until the first frame
        self._seen = 0  # the submit count the last poll saw (a later submit wakes the thread)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None  # what emit raised; the thread stops

    def submit(self, frame: np.ndarray) -> None:
        """Make ``frame`` the next one to send (the caller must not change it afterwards).
        Raises what ``emit`` raised in the pacer's thread, so the caller stops too."""
        if self.error is not None:
            raise self.error
        with self._cond:
            if self._seq != self._sent_seq:
                self.skipped += 1  # the previous frame was never sent: the producer is faster
            self._frame = frame
            self._seq += 1
            self._cond.notify_all()

    def poll(self) -> float:
        """Send a frame if one is due now; the seconds until the next one may be due."""
        with self._cond:
            wait = self._wait(self._clock())
            if wait > 0:
                return wait
            fresh = self._seq != self._sent_seq
            frame, seq = self._frame, self._seq
        self._emit(frame)  # outside the lock: submit() never waits for the device
        now = self._clock()  # after the send, which may have taken long
        with self._cond:
            self.emitted += 1
            self.repeated += not fresh
            self._sent_seq = seq
            self._due += self.period
            if self._due <= now:
                self._due = now + self.period  # a period or more behind: start again, no catch-up burst
            return max(0.0, self._wait(now))

    def _wait(self, now: float) -> float:
        """Seconds until a frame should go out (<= 0: now); notes which submit it saw. Under the lock."""
        self._seen = self._seq
        if self._frame is None:
            return self.period  # nothing to show yet
        if self._due is None:
            self._due = now  # the first frame goes out at once; the schedule starts from it
        fresh = self._seq != self._sent_seq
        return (self._due if fresh else self._due + self.grace * self.period) - now

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.poll()
            except Exception as exc:  # raised to the producer by its next submit()
                self.error = exc
                return
            if wait > 0:
                with self._cond:
                    # a submit() wakes the loop: a fresh frame may be sendable before a repeat's time
                    self._cond.wait_for(lambda: self._seq != self._seen or self._stop.is_set(), timeout=wait)

    def start(self) -> FramePacer:
        self._thread = threading.Thread(target=self._run, name="virtual-camera", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread (an emit in progress is waited for up to ``timeout`` seconds)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)


class VirtualCameraSink:
    """Composed BGR frames to a virtual camera of the camera's size and rate, paced.

    ``submit(frame)`` converts the frame (RGB, the opened size) in the caller's thread, once,
    and hands it to a :class:`FramePacer` that sends it, or repeats it, at ``fps``.
    """

    def __init__(self, size: tuple[int, int], fps: float, device: str | None = None) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.fps = fps
        self._camera = open_virtual_camera(self.size[0], self.size[1], fps, device)
        self.device = str(getattr(self._camera, "device", device or "virtual camera"))
        self._pacer = FramePacer(self._send, fps).start()

    def _send(self, frame: np.ndarray) -> None:
        self._camera.send(frame)

    def submit(self, frame: np.ndarray) -> None:
        """Queue one composed BGR frame; VirtualCameraError when the device failed."""
        try:
            self._pacer.submit(to_camera_frame(frame, self.size))
        except VirtualCameraError:
            raise
        except Exception as exc:
            raise VirtualCameraError(f"virtual camera {self.device} failed: {one_line(exc)}") from exc

    @property
    def repeated(self) -> int:
        return self._pacer.repeated

    @property
    def emitted(self) -> int:
        return self._pacer.emitted

    def close(self) -> None:
        self._pacer.close()
        self._camera.close()

    def __enter__(self) -> VirtualCameraSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

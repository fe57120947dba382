"""A camera reader that keeps only the newest frame, so a slow consumer never sees stale ones.

A daemon thread reads frames as fast as the camera delivers and overwrites a one-frame
slot; :meth:`CameraReader.read` waits for a frame newer than the last one it returned.
Frames overwritten before anyone read them are counted in ``dropped``.

A camera is an index, a device path or a stream URL (:class:`CameraSource`), opened through
the platform's own capture API (:func:`capture_backends`), with a frame size and rate asked
of the driver; what the camera really delivers is in ``frame_size`` and ``fps`` after start().
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from facecam.errors import CameraError

#: stream URLs that OpenCV's FFmpeg (or GStreamer) capture opens; an IP camera sends one of these
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")


@dataclass(frozen=True)
class CameraSource:
    """Which camera, and what to ask of its driver (None: the driver's default)."""

    location: int | str  # an index (0 = the first camera), a device path (/dev/video2) or a stream URL
    size: tuple[int, int] | None = None  # (width, height)
    fps: float | None = None

    def __str__(self) -> str:
        return str(self.location)


def is_stream_url(location: int | str) -> bool:
    """True for ``rtsp://...``, ``http(s)://...`` and the other STREAM_SCHEMES."""
    if not isinstance(location, str) or "://" not in location:
        return False
    return location.split("://", 1)[0].lower() in STREAM_SCHEMES


def capture_backends(location: int | str, platform: str | None = None) -> list[int]:
    """The OpenCV capture APIs to try for ``location`` on ``platform``, in order.

    A local camera goes straight to the platform's own API: OpenCV's default order would try
    others first (GStreamer on Linux builds that have it) and log each refusal. On Windows
    DirectShow comes first: Media Foundation opens some webcams in seconds to minutes, more so
    when a size is asked (opencv/opencv#17687, #27917); Media Foundation is the fallback for
    cameras that only it sees. Files and stream URLs keep OpenCV's own choice (FFmpeg).
    ``platform``: ``sys.platform`` when not given.
    """
    platform = platform or sys.platform
    local = isinstance(location, int) or (platform.startswith("linux") and str(location).startswith("/dev/"))
    if not local:
        return [cv2.CAP_ANY]
    if platform == "win32":
        return [cv2.CAP_DSHOW, cv2.CAP_MSMF]
    if platform == "darwin":
        return [cv2.CAP_AVFOUNDATION]
    if platform.startswith("linux"):
        return [cv2.CAP_V4L2]
    return [cv2.CAP_ANY]


def open_failure_hint(location: int | str, platform: str | None = None) -> str:
    """What to check when ``location`` does not open: the OS's camera permission comes first on
    macOS and Windows, where a denied camera simply does not open (no error says why)."""
    platform = platform or sys.platform
    if is_stream_url(location):
        return "check the URL, that the camera is on the network, and its user name and password"
    what = "the index (0 is the first camera)" if isinstance(location, int) else "the device path"
    if platform == "darwin":
        return (
            "allow the terminal (or Python) in System Settings > Privacy & Security > Camera; "
            f"check {what} and that no other program holds the camera"
        )
    if platform == "win32":
        return f"allow desktop apps in Settings > Privacy > Camera; check {what} and that no other program holds it"
    if isinstance(location, int):
        what = "the index (0 is the first camera; ls /dev/video* lists them)"
    return f"check {what}, that no other program holds the camera and that you may read it (the video group)"


def describe_delivery(source: CameraSource, size: tuple[int, int], fps: float | None) -> str:
    """One line: what the camera delivers, and what was asked where it differs (drivers round
    or refuse a size or rate without an error)."""
    rate = f"{fps:g} fps" if fps else "an unstated rate (30 fps assumed)"
    line = f"camera {source} delivers {size[0]}x{size[1]} at {rate}"
    asked = []
    if source.size is not None and tuple(source.size) != tuple(size):
        asked.append(f"{source.size[0]}x{source.size[1]}")
    if source.fps is not None and (not fps or abs(source.fps - fps) > 0.5):
        asked.append(f"{source.fps:g} fps")
    return line + (f" (asked for {' at '.join(asked)})" if asked else "")


class CameraReader:
    """``start()`` / ``read()`` / ``close()`` over ``cv2.VideoCapture``.

    ``source`` is a :class:`CameraSource`, or its location alone: a camera index, a device
    path, a stream URL (or anything VideoCapture opens, such as a video file, which the tests
    use). A camera that does not open, or sends no first frame within ``open_timeout`` seconds,
    raises CameraError (a ConnectionError).
    """

    def __init__(self, source: CameraSource | int | str = 0, open_timeout: float = 5.0, retries: int = 3) -> None:
        self.spec = source if isinstance(source, CameraSource) else CameraSource(source)
        self.source = self.spec.location
        self.open_timeout = open_timeout
        self.retries = retries
        self.dropped = 0
        self.lost = False  # the source stopped delivering (after ``retries`` re-opens)
        self.stalled = False  # a read waited its whole timeout for a frame
        self.fps = 30.0
        self.reported_fps = 0.0  # what the driver says, 0 when it does not (fps then assumes 30)
        self.frame_size: tuple[int, int] | None = None  # (width, height) of the first frame
        self._cap: cv2.VideoCapture | None = None
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._read_seq = 0
        self._ended = False
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recovering = False
        self._error: Exception | None = None

    def _open(self) -> None:
        """Open the device through the platform's capture APIs, ask for the size and rate, set
        ``fps``; CameraError when no API opens it."""
        # OpenCV logs each refusal of each capture API; the one-line error below says it all.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            for api in capture_backends(self.source):
                self._cap = cv2.VideoCapture(self.source, api)
                if self._cap.isOpened():
                    break
                self._cap.release()
            else:
                raise CameraError(f"camera {self.source} does not open; {open_failure_hint(self.source)}")
            ask_driver(self._cap, self.spec)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        self.reported_fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = self.reported_fps if 1 <= self.reported_fps <= 240 else 30.0

    def _grab(self) -> np.ndarray | None:
        """The next frame from the device, None when it has ended."""
        ok, frame = self._cap.read()
        return frame if ok else None

    def _recover(self) -> np.ndarray | None:
        """Re-open the source up to ``retries`` times, waiting longer each time; its first frame or None."""
        for attempt in range(self.retries):
            if self._stop.wait(0.5 * (attempt + 1)):
                return None
            self._release()
            try:
                self._open()
            except CameraError:
                continue
            frame = self._grab()
            if frame is not None:
                return frame
        return None

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()

    def start(self) -> CameraReader:
        """Open the source and start the reading thread; returns self once a first frame has arrived."""
        self._open()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()
        with self._cond:
            got_frame = self._cond.wait_for(lambda: self._seq > 0 or self._ended, timeout=self.open_timeout)
        if not got_frame or self._seq == 0:
            self.close()
            raise CameraError(f"camera {self.source} opened but sent no frame within {self.open_timeout:.0f} s")
        with self._cond:
            height, width = self._frame.shape[:2]
        self.frame_size = (width, height)  # the frame's own size: drivers may round what was asked
        return self

    def delivery(self) -> str:
        """One line on what the started camera delivers (and what was asked, where it differs)."""
        stated = self.reported_fps if 1 <= self.reported_fps <= 240 else None
        return describe_delivery(self.spec, self.frame_size or (0, 0), stated)

    def _run(self) -> None:
        """The reading thread: the only place the device is used after start(), and released."""
        try:
            self._loop()
        except Exception as exc:  # handed to read(), which raises it in the caller's thread
            self._error = exc
        finally:
            self._release()
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _loop(self) -> None:
        while not self._stop.is_set():
            frame = self._grab()
            if frame is None and not self._stop.is_set():
                self._recovering = True
                try:
                    frame = self._recover()
                finally:
                    self._recovering = False
            with self._cond:
                if frame is None:
                    self.lost = not self._stop.is_set()
                    return
                if self._seq > self._read_seq:
                    self.dropped += 1
                self._frame = frame
                self._seq += 1
                self._cond.notify_all()

    def read(self, timeout: float = 2.0) -> np.ndarray | None:
        """The newest frame not yet returned; None when the camera has ended or sent nothing in ``timeout`` s.

        While the source is being re-opened the wait is extended, so recovery gets its chance.
        An error in the reading thread is raised here as a CameraError.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._seq == self._read_seq:
                if self._error is not None:
                    raise CameraError(f"camera {self.source} failed: {self._error}") from self._error
                if self._recovering:
                    deadline = max(deadline, time.monotonic() + timeout)
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    self.stalled = not self._ended
                    return None
                self._cond.wait(min(remaining, 0.25))
            self._read_seq = self._seq
            return self._frame

    def close(self) -> None:
        """Stop the reading thread; it releases the device itself when it ends (never under its feet)."""
        self._stop.set()
        if self._thread is None:
            self._release()
            return
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():
            print(
                f"facecam: camera {self.source} is slow to stop; it is released when its read returns", file=sys.stderr
            )

    def __enter__(self) -> CameraReader:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class PacedFrames(CameraReader):
    """A camera stand-in: ``frames`` delivered at ``fps`` in real time, newest frame only.

    For benchmarks and tests of camera behaviour (drops, latency) without a camera.
    """

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0) -> None:
        super().__init__(source="paced frames", retries=0)
        self._frames = frames
        self.fps = self.reported_fps = fps
        self._next = 0
        self._t0 = 0.0

    def _open(self) -> None:
        if not self._frames:
            raise CameraError("paced source has no frames")
        self._t0 = time.perf_counter()

    def _grab(self) -> np.ndarray | None:
        if self._next >= len(self._frames):
            return None
        delay = self._t0 + self._next / self.fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._next += 1
        return self._frames[self._next - 1]


def ask_driver(cap: cv2.VideoCapture, spec: CameraSource) -> None:
    """Ask an opened capture for ``spec``'s size and rate. Drivers may refuse or round without
    an error, so the reader reports what the frames and the driver then say."""
    # Size before rate: many drivers list the rates each size allows.
    if spec.size is not None:
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.size[1])
    if spec.fps is not None:
        cap.set(cv2.CAP_PROP_FPS, spec.fps)


def frames_until_end(camera: CameraReader, timeout: float = 2.0):
    """Frames of a started camera until it ends (``iter(read, None)`` would compare arrays with ==)."""
    while (frame := camera.read(timeout=timeout)) is not None:
        yield frame

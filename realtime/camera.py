"""A camera reader that keeps only the newest frame, so a slow consumer never sees stale ones.

A daemon thread reads frames as fast as the camera delivers and overwrites a one-frame
slot; :meth:`CameraReader.read` waits for a frame newer than the last one it returned.
Frames overwritten before anyone read them are counted in ``dropped``.
"""

from __future__ import annotations

import sys
import threading
import time

import cv2
import numpy as np

from facecam.errors import CameraError


class CameraReader:
    """``start()`` / ``read()`` / ``close()`` over ``cv2.VideoCapture(source)``.

    ``source`` is a camera index (or anything VideoCapture opens, which the tests use).
    A camera that does not open, or sends no first frame within ``open_timeout`` seconds,
    raises CameraError (a ConnectionError).
    """

    def __init__(self, source: int | str = 0, open_timeout: float = 5.0, retries: int = 3) -> None:
        self.source = source
        self.open_timeout = open_timeout
        self.retries = retries
        self.dropped = 0
        self.lost = False  # the source stopped delivering (after ``retries`` re-opens)
        self.stalled = False  # a read waited its whole timeout for a frame
        self.fps = 30.0
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
        """Open the device and set ``fps``; CameraError when it does not open."""
        # OpenCV tries every capture backend and logs each refusal; the one-line error below says it all.
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            self._cap = cv2.VideoCapture(self.source)
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not self._cap.isOpened():
            self._cap.release()
            raise CameraError(
                f"camera {self.source} does not open; check the index (0 is the first camera) "
                "and that no other program holds it"
            )
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1 <= fps <= 240 else 30.0

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
        return self

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
        self.fps = fps
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


def frames_until_end(camera: CameraReader, timeout: float = 2.0):
    """Frames of a started camera until it ends (``iter(read, None)`` would compare arrays with ==)."""
    while (frame := camera.read(timeout=timeout)) is not None:
        yield frame

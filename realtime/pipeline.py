"""The threaded pipeline: capture -> faces (find, crop, track, smooth) -> upsampling and compose -> output.

Each stage runs in its own thread, joined to the next by a bounded queue, so decoding,
inference and composing of consecutive frames overlap. The upsampling and the compose share a
thread: the full-resolution alpha one makes (its box part) is read by the other while it is
still in that core's cache, and one hand-off less between Python threads (each costs GIL switches) saved
about 1 ms of CPU a 720p frame and gave more FPS than a thread each. The output stage runs in the
caller's thread (windows must live there). A video source is never dropped from: a full
queue blocks the stage before it (back-pressure), so the output has every input frame in
order. A camera source is read through :class:`~facecam.realtime.camera.CameraReader`,
which keeps only the newest frame, and the queues hold one frame to keep latency low.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from facecam.realtime.crops import Box
from facecam.realtime.faces import FrameFaces
from facecam.realtime.processing import Halvings
from facecam.realtime.smoothing import FlickerMeter
from facecam.realtime.stats import RunStats
from facecam.realtime.tracking import HeldFace

if TYPE_CHECKING:
    from facecam.api import FaceStream

_END = object()
_POLL = 0.1  # seconds between checks of the stop flag while a queue is full or empty


@dataclass
class Frame:
    """One frame on its way through the pipeline."""

    index: int
    image: np.ndarray  # (H, W, 3) uint8 BGR
    captured: float  # perf_counter() when it left the source
    mode: str = "overlay"  # the compose mode when it was captured (the window may switch modes)
    mask: np.ndarray | None = None  # (h, w) float32 0..1, smoothed, on the mask grid
    faces: list[Box] = field(default_factory=list)  # the faces tracked in this frame (frame pixels)
    held: list[HeldFace] = field(default_factory=list)  # faces just lost, still anonymised
    levels: Halvings | None = field(default=None, repr=False)  # the image's halvings, made once, shared by the steps
    still: np.ndarray | None = field(default=None, repr=False)  # where the picture stood still, on the mask grid
    alpha: np.ndarray | None = None  # (h, w) float32 0..1: the full-resolution alpha inside alpha_box
    alpha_box: tuple[slice, slice] | None = None  # the rows and columns outside which the alpha is 0
    output: np.ndarray | None = None  # (H, W, 3) uint8 BGR


@dataclass
class _RunControl:
    """One run's stop flag and the errors its stages raised."""

    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)


class _Books:
    """A run's stats: the warm-up frames' (thrown away) and the counted frames', with the wall and
    CPU time from the moment counting starts. ``warmed`` is set then: the source is not read
    past the warm-up before it (see Pipeline.run)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.counted = RunStats()
        self._warm = RunStats()
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()  # until counting starts
        self.warmed = threading.Event()

    def counts(self, index: int) -> bool:
        return index >= self.warmup

    def of(self, index: int) -> RunStats:
        return self.counted if self.counts(index) else self._warm

    def start_counting(self) -> None:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        self.warmed.set()

    def stop_counting(self) -> None:
        self.counted.seconds = time.perf_counter() - self._wall0
        self.counted.cpu_seconds = time.process_time() - self._cpu0


class Pipeline:
    """Run frames through a :class:`~facecam.api.FaceStream`'s three steps on two threads: faces
    found, cropped, segmented, tracked and smoothed; then the full-resolution alpha and the mode drawn.

    ``stream.settings`` may be changed while running (the camera window's mode keys do that).
    ``queue_size``: frames each queue holds (4 for files; use 1 for a camera).
    ``measure_flicker``: record the mask flicker figure in the stats.
    """

    def __init__(
        self,
        stream: FaceStream,
        queue_size: int = 4,
        measure_flicker: bool = False,
    ) -> None:
        self.stream = stream
        self.settings = stream.settings
        self.queue_size = queue_size
        self.flicker = FlickerMeter() if measure_flicker else None
        self.join_timeout = 5.0  # seconds each stage gets to finish after the stop

    def _put(self, q: queue.Queue, item, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue, stop: threading.Event):
        while not stop.is_set():
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue
        return _END

    def _stage(self, name: str, work: Callable[[], None], run: _RunControl) -> threading.Thread:
        def guarded() -> None:
            try:
                work()
            except BaseException as exc:  # handed to the caller's thread, which re-raises it
                run.errors.append(exc)
                run.stop.set()

        thread = threading.Thread(target=guarded, name=f"facecam-{name}", daemon=True)
        thread.start()
        return thread

    def _capture(self, source: Iterable[np.ndarray], out: queue.Queue, books: _Books, stop: threading.Event) -> None:
        frames = iter(source)
        index = 0
        while not stop.is_set():
            if index == books.warmup and not self._warmed(books, stop):
                return
            t0 = time.perf_counter()
            image = next(frames, None)
            if image is None:
                break
            now = time.perf_counter()
            books.of(index).stage_ms["decode"].append((now - t0) * 1000)
            if not self._put(out, Frame(index, image, now, mode=self.settings.mode), stop):
                return
            index += 1
        self._put(out, _END, stop)

    @staticmethod
    def _warmed(books: _Books, stop: threading.Event) -> bool:
        """Wait until the warm-up frames are all out (False: the run stopped first), so that the
        first counted frame enters an empty pipeline and a paced source starts no earlier."""
        while not books.warmed.wait(_POLL):
            if stop.is_set():
                return False
        return True

    def _worker(self, inp: queue.Queue, out: queue.Queue, step: Callable[[Frame], None], stop: threading.Event) -> None:
        """Apply ``step`` to every frame from ``inp`` and pass it on to ``out``, in order."""
        while (item := self._get(inp, stop)) is not _END:
            step(item)
            if not self._put(out, item, stop):
                return
        self._put(out, _END, stop)

    def _infer(self, item: Frame, books: _Books) -> None:
        stats = books.of(item.index)
        timings: dict[str, float] = {}
        found = self.stream.find(item.image, item.index, timings)
        item.mask, item.faces, item.held, item.levels = found.mask, found.faces, found.held, found.levels
        item.still = found.still
        for stage, ms in timings.items():
            stats.stage_ms[stage].append(ms)

    def _refine(self, item: Frame, books: _Books) -> None:
        """The edge-aware full-resolution alpha; the flicker figure is taken on it, as the anchor
        takes MediaPipe's on its full-resolution mask (in memory: a mask video's encoding adds
        toggles of its own, about 0.001 on d3.mp4)."""
        t0 = time.perf_counter()
        item.alpha, item.alpha_box = self.stream.alpha_in_box(item.image, self._found(item), item.mode)
        stats = books.of(item.index)
        stats.stage_ms["upsample"].append((time.perf_counter() - t0) * 1000)
        if self.flicker is not None and books.counts(item.index):
            # the measuring is not facecam's work: its CPU time is kept apart (a benchmark's CPU
            # per frame leaves it out; about 0.4 ms a 720p frame)
            c0 = time.thread_time()
            self.flicker.add_in_box(item.alpha, item.alpha_box, item.image.shape[:2])
            stats.measuring_cpu_s += time.thread_time() - c0

    def _compose(self, item: Frame, books: _Books) -> None:
        self._refine(item, books)
        t0 = time.perf_counter()
        item.output = self.stream.draw_in_box(item.image, item.alpha, item.alpha_box, item.mode, self._found(item))
        books.of(item.index).stage_ms["compose"].append((time.perf_counter() - t0) * 1000)

    @staticmethod
    def _found(item: Frame) -> FrameFaces:
        return FrameFaces(item.mask, item.faces, item.held, item.levels, item.still)

    def run(self, source: Iterable[np.ndarray], sink: Callable[[Frame], bool | None], warmup: int = 0) -> RunStats:
        """Process every frame of ``source`` and hand each result to ``sink`` in order.

        ``sink(frame)`` returning False stops the run early. Ctrl-C stops it too: the stats
        then say ``interrupted`` and every frame already given to ``sink`` stays done.
        An exception in any stage stops all stages and is raised here.

        ``warmup``: the first frames are processed and handed to ``sink`` like the rest, but the
        stats (frames, times, latency, flicker, CPU) count only what follows them; the source is
        read past them only once they are all out, and the clocks start then, so the counted
        frames neither queue behind warm-up frames nor were begun before the clocks. A benchmark
        warms up this way, on the threads it then times: a new thread's first few hundred frames
        pay to grow its memory (about 100 page faults a 720p frame), and a warm-up run on other
        threads left that in the timed frames.
        """
        books = _Books(warmup)
        stats = books.counted
        q_in, q_mask, q_out = (queue.Queue(self.queue_size) for _ in range(3))
        # This run's own flag and error list, captured by its threads: a stage of an earlier run
        # that was abandoned stuck (a hung driver) and wakes up later stops and fails only that run.
        run = _RunControl()
        stop = run.stop
        self.stream.reset()
        if warmup == 0:
            books.start_counting()
        threads = [
            self._stage("capture", lambda: self._capture(source, q_in, books, stop), run),
            self._stage("inference", lambda: self._worker(q_in, q_mask, lambda f: self._infer(f, books), stop), run),
            self._stage("compose", lambda: self._worker(q_mask, q_out, lambda f: self._compose(f, books), stop), run),
        ]
        try:
            while (item := self._get(q_out, stop)) is not _END:
                t0 = time.perf_counter()
                keep_going = sink(item)
                done = time.perf_counter()
                counted = books.of(item.index)
                counted.stage_ms["output"].append((done - t0) * 1000)
                counted.latency_ms.append((done - item.captured) * 1000)
                counted.frames += 1
                counted.faces += len(item.faces)
                if item.index == warmup - 1:  # warmed up: the figures start now
                    books.start_counting()
                if keep_going is False:
                    break
        except KeyboardInterrupt:
            stats.interrupted = True
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=self.join_timeout)
            # Daemon threads do not hold the exit, but a stage that never returns should be named.
            stats.stuck = [thread.name for thread in threads if thread.is_alive()]
            books.stop_counting()
        if self.flicker is not None:
            stats.flicker = self.flicker.value
        if run.errors:
            raise run.errors[0]
        return stats

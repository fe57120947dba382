"""The threaded pipeline: capture -> faces (find, crop, track, smooth) -> upsampling -> compose -> output.

Each stage runs in its own thread, joined to the next by a bounded queue, so decoding,
inference and composing of consecutive frames overlap. The output stage runs in the
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

import numpy as np

from facecam.realtime.compose import ComposeSettings, draw, face_alpha
from facecam.realtime.crops import Box
from facecam.realtime.faces import FaceFinder
from facecam.realtime.holes import close_pockets
from facecam.realtime.smoothing import FlickerMeter
from facecam.realtime.tracking import HeldFace

#: finder: the full-frame pass that proposes faces; crops: each face segmented in its crop;
#: merge: per-face smoothing and the crops' masks merged into the frame's mask grid
STAGES = ("decode", "finder", "crops", "merge", "upsample", "compose", "output")
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
    alpha: np.ndarray | None = None  # (H, W) float32 0..1, the mask at full resolution
    output: np.ndarray | None = None  # (H, W, 3) uint8 BGR


@dataclass
class RunStats:
    """What a run did: frames, wall time, per-stage and end-to-end milliseconds, flicker, faces."""

    frames: int = 0
    faces: int = 0  # faces tracked, summed over the frames (faces per frame = faces / frames)
    seconds: float = 0.0
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    latency_ms: list[float] = field(default_factory=list)
    interrupted: bool = False
    flicker: float | None = None
    stuck: list[str] = field(default_factory=list)  # stages still running after the stop (a hung driver)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def faces_per_frame(self) -> float:
        return self.faces / self.frames if self.frames else 0.0

    def summary(self) -> str:
        stages = "  ".join(f"{s} {np.median(v):.1f}" for s, v in self.stage_ms.items() if v)
        text = f"{self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} FPS; median ms per stage: {stages}"
        text += f"; faces per frame {self.faces_per_frame:.2f}"
        if self.latency_ms:
            text += f"; latency p50 {np.percentile(self.latency_ms, 50):.0f} ms"
        if self.flicker is not None:
            text += f"; flicker {self.flicker:.4f}"
        return text


class Pipeline:
    """Run frames through a FaceFinder (faces found, cropped, segmented, tracked, smoothed) and ``compose``.

    ``settings`` may be changed while running (the camera window's mode keys do that).
    ``queue_size``: frames each queue holds (4 for files; use 1 for a camera).
    ``measure_flicker``: record the mask flicker figure in the stats.
    """

    def __init__(
        self,
        finder: FaceFinder,
        settings: ComposeSettings,
        queue_size: int = 4,
        measure_flicker: bool = False,
    ) -> None:
        self.finder = finder
        self.settings = settings
        self.queue_size = queue_size
        self.flicker = FlickerMeter() if measure_flicker else None
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self.join_timeout = 5.0  # seconds each stage gets to finish after the stop

    def _put(self, q: queue.Queue, item) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue):
        while not self._stop.is_set():
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue
        return _END

    def _stage(self, name: str, work: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                work()
            except BaseException as exc:  # handed to the caller's thread, which re-raises it
                self._errors.append(exc)
                self._stop.set()

        thread = threading.Thread(target=guarded, name=f"facecam-{name}", daemon=True)
        thread.start()
        return thread

    def _capture(self, source: Iterable[np.ndarray], out: queue.Queue, stats: RunStats) -> None:
        frames = iter(source)
        index = 0
        while not self._stop.is_set():
            t0 = time.perf_counter()
            image = next(frames, None)
            if image is None:
                break
            now = time.perf_counter()
            stats.stage_ms["decode"].append((now - t0) * 1000)
            if not self._put(out, Frame(index, image, now, mode=self.settings.mode)):
                return
            index += 1
        self._put(out, _END)

    def _worker(self, inp: queue.Queue, out: queue.Queue, step: Callable[[Frame], None]) -> None:
        """Apply ``step`` to every frame from ``inp`` and pass it on to ``out``, in order."""
        while (item := self._get(inp)) is not _END:
            step(item)
            if not self._put(out, item):
                return
        self._put(out, _END)

    def _infer(self, item: Frame, stats: RunStats) -> None:
        timings: dict[str, float] = {}
        found = self.finder.process(item.image, item.index, timings)
        item.mask, item.faces, item.held = found.mask, found.faces, found.held
        for stage, ms in timings.items():
            stats.stage_ms[stage].append(ms)

    def _refine(self, item: Frame, stats: RunStats) -> None:
        """Pockets inside each face filled, then the edge-aware full-resolution alpha."""
        t0 = time.perf_counter()
        item.mask = close_pockets(item.mask)  # a lit cheek, the lips: the second line behind the model
        if self.flicker is not None:
            self.flicker.add(item.mask)
        item.alpha = face_alpha(
            item.image, item.mask, item.mode, faces=item.faces, held=item.held, settings=self.settings
        )
        stats.stage_ms["upsample"].append((time.perf_counter() - t0) * 1000)

    def _draw(self, item: Frame, stats: RunStats) -> None:
        t0 = time.perf_counter()
        item.output = draw(item.image, item.alpha, self.settings, item.mode)
        stats.stage_ms["compose"].append((time.perf_counter() - t0) * 1000)

    def run(self, source: Iterable[np.ndarray], sink: Callable[[Frame], bool | None]) -> RunStats:
        """Process every frame of ``source`` and hand each result to ``sink`` in order.

        ``sink(frame)`` returning False stops the run early. Ctrl-C stops it too: the stats
        then say ``interrupted`` and every frame already given to ``sink`` stays done.
        An exception in any stage stops all stages and is raised here.
        """
        stats = RunStats()
        q_in, q_mask, q_alpha, q_out = (queue.Queue(self.queue_size) for _ in range(4))
        self._stop.clear()
        self._errors.clear()
        self.finder.reset()
        start = time.perf_counter()
        threads = [
            self._stage("capture", lambda: self._capture(source, q_in, stats)),
            self._stage("inference", lambda: self._worker(q_in, q_mask, lambda f: self._infer(f, stats))),
            self._stage("refine", lambda: self._worker(q_mask, q_alpha, lambda f: self._refine(f, stats))),
            self._stage("compose", lambda: self._worker(q_alpha, q_out, lambda f: self._draw(f, stats))),
        ]
        try:
            while (item := self._get(q_out)) is not _END:
                t0 = time.perf_counter()
                keep_going = sink(item)
                done = time.perf_counter()
                stats.stage_ms["output"].append((done - t0) * 1000)
                stats.latency_ms.append((done - item.captured) * 1000)
                stats.frames += 1
                stats.faces += len(item.faces)
                if keep_going is False:
                    break
        except KeyboardInterrupt:
            stats.interrupted = True
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=self.join_timeout)
            # Daemon threads do not hold the exit, but a stage that never returns should be named.
            stats.stuck = [thread.name for thread in threads if thread.is_alive()]
            stats.seconds = time.perf_counter() - start
        if self.flicker is not None:
            stats.flicker = self.flicker.value
        if self._errors:
            raise self._errors[0]
        return stats

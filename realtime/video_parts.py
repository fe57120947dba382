"""One video file on every core: its frames cut into parts that worker processes run at once.

    plan = plan_parts(reader, workers)                              # None: one process is as good
    stats = run_parts(spec, source, plan, write)                    # write(index, seconds, image), in order

Why: the faces step of one stream follows its faces from frame to frame, so it runs one frame
after the other; in anonymize on a crowd it is the slow step by far, and the threaded pipeline
kept 1.4 of 2 cores busy on the crowd clip (group1.mp4: 14.8 s wall, 20.8 s CPU). A file's
parts depend on each other only through the faces that cross a part's first frame, so each
worker first runs the ``warm`` frames before its part, their output dropped: the part's first
frame then has the faces found and the faces held (a lost face is covered for
faces.MEMORY_SECONDS) as one run would have, and the zoomed pass looks at the whole of a run's
first frame.

How: with N workers, worker w runs parts w, w + N, w + 2N, ... of ``part_frames`` frames (the
first part ``warm`` frames more: the others spend that long warming up, see part_start). It
decodes the file itself (no frame crosses a process boundary on the way in; decoding the frames
it passes over costs little beside the faces step) and sends each output frame, with the time the
source shows it, to the parent, which writes them in order. A worker starts a part only when the
parent allows it, and at most N parts are under way: what waits to be written is at most N - 1
parts, which ``plan_parts`` keeps within RESULT_BUDGET bytes.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction

from facecam.errors import FacecamError, one_line
from facecam.realtime.batch import BatchSpec
from facecam.realtime.faces import MEMORY_SECONDS
from facecam.realtime.stats import RunStats

#: output frames waiting to be written (the parts finished ahead of the one being written) may
#: take this many bytes at most
RESULT_BUDGET = 512 * 2**20
#: a part runs this many seconds of frames before its own first one, their output dropped: the
#: memory of lost faces, and the smoothing settled (see the module's docstring)
WARM_SECONDS = MEMORY_SECONDS + 0.1
#: a part at least this many times its warm-up (shorter parts spend more on warming than they save)
MIN_PART_WARMS = 4
#: seconds between checks that a worker the parent waits on is still alive
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class PartPlan:
    """How a file is cut: ``workers`` processes, parts of ``part_frames``, ``warm`` frames before
    each; ``stated_frames``: the frames the file says it has (None: it does not say)."""

    workers: int
    part_frames: int
    warm: int
    fps: float
    stated_frames: int | None = None


def plan_parts(
    frame_hw: tuple[int, int], fps: float, stated_frames: int | None, workers: int, budget: int = RESULT_BUDGET
) -> PartPlan | None:
    """The parts of a file of ``stated_frames`` (None: unknown) ``frame_hw`` frames at ``fps``
    for ``workers`` processes: as many parts as workers for a short file, parts of at most what
    the budget holds for a long one; None when one process is as good (one worker, or parts
    that would be under MIN_PART_WARMS warm-ups long)."""
    if workers < 2:
        return None
    warm = math.ceil(WARM_SECONDS * fps)
    frame_bytes = 3 * frame_hw[0] * frame_hw[1]
    longest = budget // ((workers - 1) * frame_bytes)
    even = math.ceil((stated_frames - warm) / workers) if stated_frames else longest
    part_frames = min(longest, even)
    if part_frames < MIN_PART_WARMS * warm:
        return None
    return PartPlan(workers, part_frames, warm, fps, stated_frames)


def part_start(part: int, plan: PartPlan) -> int:
    """The first frame of ``part``: the first part is ``warm`` frames longer than the others, so
    that a worker that warms up before its first part ends when the first one does."""
    return 0 if part == 0 else part * plan.part_frames + plan.warm


def part_of(index: int, plan: PartPlan) -> int:
    """The part frame ``index`` belongs to (see part_start)."""
    return 0 if index < plan.part_frames + plan.warm else (index - plan.warm) // plan.part_frames


def part_run_by(worker: int, index: int, plan: PartPlan) -> int | None:
    """The part ``worker`` runs frame ``index`` for: one of its own, or the next one's warm-up
    (the last ``warm`` frames of the part before it; not for a part past the frames the file
    states, which most likely never comes); None for a frame it passes over."""
    part = part_of(index, plan)
    if part % plan.workers == worker:
        return part
    following = part + 1
    begins = part_start(following, plan)
    stated = plan.stated_frames is None or begins < plan.stated_frames
    if following % plan.workers == worker and index >= begins - plan.warm and stated:
        return following
    return None


def run_parts(
    spec: BatchSpec,
    source: str,
    plan: PartPlan,
    write: Callable[[int, Fraction | None, object], None],
    max_frames: int = 0,
) -> tuple[RunStats, int]:
    """Run ``source``'s frames through ``plan.workers`` processes (see the module's docstring),
    calling ``write(index, seconds, image)`` for every output frame in order. Returns the run's
    stats and the corrupt frames skipped. A worker's error is a FacecamError here (the frames
    written stay written); Ctrl-C (or a KeyboardInterrupt from ``write``) ends the run early,
    ``stats.interrupted`` set."""
    context = multiprocessing.get_context("spawn")  # onnxruntime and threads do not survive a fork
    allowed = [context.Queue() for _ in range(plan.workers)]
    results = [context.Queue() for _ in range(plan.workers)]
    spec = replace(spec, threads=spec.threads or 1)  # a core each: the workers share the machine
    workers = [
        context.Process(
            target=_worker,
            args=(spec, source, plan, w, allowed[w], results[w], max_frames),
            daemon=True,
            name=f"facecam part worker {w}",
        )
        for w in range(plan.workers)
    ]
    stats, skipped = RunStats(), 0
    start, cpu0 = time.perf_counter(), time.process_time()
    try:
        for w, process in enumerate(workers):
            process.start()
            allowed[w].put(w)
        part, total = 0, None
        while total is None or part_start(part, plan) < total:
            w = part % plan.workers
            while True:
                kind, *rest = _next_message(results[w], workers[w])
                if kind == "frame":
                    index, seconds, image, faces = rest
                    write(index, seconds, image)
                    stats.frames += 1
                    stats.faces += faces
                elif kind == "part":
                    break
                elif kind == "end":
                    total, skipped = rest
                    break
                else:
                    raise FacecamError(rest[0])
            allowed[w].put(part + plan.workers)
            part += 1
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            process.join(timeout=5)
    stats.seconds = time.perf_counter() - start
    stats.cpu_seconds = time.process_time() - cpu0  # the parent's own: writing
    return stats, skipped


def _next_message(results, process) -> tuple:
    """The next message from a worker; a worker that died without one is a FacecamError."""
    while True:
        try:
            return results.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if not process.is_alive():
                raise FacecamError(
                    f"{process.name} stopped (exit code {process.exitcode}; out of memory?); try --jobs 1"
                ) from None


def _worker(spec: BatchSpec, source: str, plan: PartPlan, worker: int, allowed, results, max_frames: int) -> None:
    """One worker process: its parts of ``source``, each output frame to ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops the workers
    try:
        _run_worker(spec, source, plan, worker, allowed, results, max_frames)
    except FacecamError as exc:
        results.put(("error", one_line(exc)))
    except Exception as exc:  # a bug: said, not lost in a process nobody watches
        results.put(("error", f"unexpected error in a part worker: {type(exc).__name__}: {one_line(exc)}"))


def _allowed(allowed) -> bool:
    """Wait until the parent allows this worker's next part; False when the parent is gone (a
    worker left alone must not wait for ever)."""
    while True:
        try:
            return allowed.get(timeout=POLL_SECONDS) is not None
        except queue.Empty:
            parent = multiprocessing.parent_process()
            if parent is not None and not parent.is_alive():
                return False


def _run_worker(spec: BatchSpec, source: str, plan: PartPlan, worker: int, allowed, results, max_frames: int) -> None:
    import cv2

    from facecam.realtime.batch import job_options, open_models
    from facecam.realtime.video_reader import VideoReader

    cv2.setNumThreads(1)  # one core each
    segmenter, verifier = open_models(spec)
    opts = job_options(spec, verifier, None)
    stream, running = None, None
    index = -1
    with VideoReader(source) as reader:
        for index, image in enumerate(reader.frames(keep=lambda i: part_run_by(worker, i, plan) is not None)):
            seconds = reader.take_frame_time(index)
            if max_frames and index >= max_frames:
                index -= 1
                break
            part = part_run_by(worker, index, plan)
            if part is None:
                continue
            if part != running:
                if running is not None:
                    results.put(("part", running))
                if not _allowed(allowed):
                    return
                stream, running = opts.stream(segmenter, plan.fps), part
            result = stream.process(image)
            if index >= part_start(part, plan):  # not a warm-up frame
                results.put(("frame", index, seconds, result.image, len(result.faces)))
        results.put(("end", index + 1, reader.skipped))

"""One video file on every core: its frames cut into parts that worker processes run at once.

    plan = plan_parts(frame_hw, fps, stated_frames, workers)         # None: one process is as good
    stats, skipped = run_parts(spec, source, plan, write)            # write(index, seconds, image), in order

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
parent allows it, and at most N parts are under way: what waits to be written is at most N parts,
which ``plan_parts`` keeps within RESULT_BUDGET bytes. Parts are a command-line feature: the
workers take the tools' process settings (errors.cli_process_settings).
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction

from facecam.errors import FacecamError, interrupts_deferred, one_line
from facecam.realtime.batch import BatchSpec
from facecam.realtime.faces import MEMORY_SECONDS
from facecam.realtime.providers import usable_cores
from facecam.realtime.stats import RunStats

#: output frames waiting to be written (the parts under way) may take this many bytes at most
RESULT_BUDGET = 2**30
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


def default_workers(mode: str, provider: str) -> int:
    """Worker processes on a file's parts when none are asked for: every core in anonymize on the
    CPU, where the faces step of one stream is the slow one by far; 1 in the other modes (one
    process keeps the cores busy: its upsampling and compose run beside the faces step) and on a
    GPU (one device, which one process keeps busy)."""
    return usable_cores() if mode == "anonymize" and provider == "CPUExecutionProvider" else 1


def plan_parts(
    frame_hw: tuple[int, int], fps: float, stated_frames: int | None, workers: int, budget: int = RESULT_BUDGET
) -> PartPlan | None:
    """The parts of a file of ``stated_frames`` ``frame_hw`` frames at ``fps`` for up to
    ``workers`` processes: as many parts as workers for a short file, parts of at most what the
    budget holds for a long one. Fewer workers where the budget holds N parts of MIN_PART_WARMS
    warm-ups only for fewer (big frames), or where the file has fewer parts of that length than
    there are workers; None when that leaves one, or when the file does not say how many frames
    it has (None or 0: cut blind, a short one would run whole in the first worker, on one core)."""
    if not stated_frames:
        return None
    warm = math.ceil(WARM_SECONDS * fps)
    frame_bytes = 3 * frame_hw[0] * frame_hw[1]
    workers = min(workers, budget // (MIN_PART_WARMS * warm * frame_bytes))
    # a short file on many cores: as many workers as it has parts of MIN_PART_WARMS warm-ups
    # (16 cores and a 10 s clip: 3 workers, not one process)
    workers = min(workers, (stated_frames - warm) // (MIN_PART_WARMS * warm))
    if workers < 2:
        return None
    # both caps above keep a part at least MIN_PART_WARMS warm-ups long
    longest = budget // (workers * frame_bytes)
    part_frames = min(longest, math.ceil((stated_frames - warm) / workers))
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
    (the last ``warm`` frames of the part before it; not for a part that begins past the frames
    the file states, which most likely never comes: should it come, it starts as after a scene
    cut); None for a frame it passes over."""
    part = part_of(index, plan)
    if part % plan.workers == worker:
        return part
    following = part + 1
    begins = part_start(following, plan)
    may_come = plan.stated_frames is None or begins < plan.stated_frames
    if following % plan.workers == worker and index >= begins - plan.warm and may_come:
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
    stats (its seconds include the workers' start; its CPU seconds are the parent's and, where
    the system says, the workers') and the corrupt frames skipped. A worker's error is a
    FacecamError here (the frames written stay written); Ctrl-C (or a KeyboardInterrupt from
    ``write``) ends the run early, ``stats.interrupted`` set."""
    context = multiprocessing.get_context("spawn")  # onnxruntime and threads do not survive a fork
    allowed = [context.Queue() for _ in range(plan.workers)]
    results = [context.Queue() for _ in range(plan.workers)]
    spec = replace(spec, threads=spec.threads or 1)  # unless --threads, a core each: they share the machine
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
    start, cpu0, children0 = time.perf_counter(), time.process_time(), _children_cpu()
    try:
        for w, process in enumerate(workers):
            process.start()
            _leave_writing_to(results[w])
            allowed[w].put(True)
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
            allowed[w].put(True)  # its next part, once this one is written
            part += 1
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        with interrupts_deferred():  # a second Ctrl-C waits until every worker has ended
            for process in workers:
                if process.is_alive():
                    process.terminate()
            for process in workers:
                process.join(timeout=5)
    stats.seconds = time.perf_counter() - start
    stats.cpu_seconds = time.process_time() - cpu0 + _children_cpu() - children0
    return stats, skipped


def _children_cpu() -> float:
    """CPU seconds of this process's ended children (0 where the system does not say: Windows)."""
    try:
        resource = importlib.import_module("resource")  # Unix only
    except ImportError:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _leave_writing_to(results) -> None:
    """Close this process's copy of the write end of a worker's ``results`` queue (started: the
    worker has its own). A worker killed while it writes a frame (out of memory) leaves half a
    message in the pipe; while a writer is still open here, the read of it waits for the rest for
    ever. With the worker's end the only one, the read ends at once (EOFError, OSError)."""
    results._writer.close()  # multiprocessing.Queue's pipe: (_reader, _writer); this process only reads


def _next_message(results, process) -> tuple:
    """The next message from a worker; a worker that ended without one (or in the middle of one)
    is a FacecamError."""
    while True:
        try:
            return results.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if process.is_alive():
                continue
        except (EOFError, OSError):  # no writer left: the worker ended, perhaps mid-message
            process.join(timeout=POLL_SECONDS)  # for its exit code
            break
        try:  # it may have sent its last message and ended between the two checks
            return results.get(timeout=POLL_SECONDS)
        except (queue.Empty, EOFError, OSError):
            break
    raise FacecamError(f"{process.name} stopped (exit code {process.exitcode}; out of memory?); try --jobs 1")


def _worker(spec: BatchSpec, source: str, plan: PartPlan, worker: int, allowed, results, max_frames: int) -> None:
    """One worker process: its parts of ``source``, each output frame to ``results``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops the workers
    _exit_with_parent()
    try:
        from facecam.errors import cli_process_settings

        cli_process_settings()
        _run_worker(spec, source, plan, worker, allowed, results, max_frames)
    except FacecamError as exc:
        results.put(("error", one_line(exc)))
    except Exception as exc:  # a bug: said, not lost in a process nobody watches
        results.put(("error", f"unexpected error in a part worker: {type(exc).__name__}: {one_line(exc)}"))


def _exit_with_parent() -> None:
    """End this process the moment its parent ends, however it ended (killed, out of memory): a
    worker left alone would wait for ever on a full pipe to the parent, holding its frames."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()


def _run_worker(spec: BatchSpec, source: str, plan: PartPlan, worker: int, allowed, results, max_frames: int) -> None:
    """Decode ``source``, run this worker's parts (each a fresh stream from its warm-up on, each
    begun only once ``allowed`` says so), and send: every output frame of a part, ("part", p)
    after its last frame, and ("end", frames, corrupt frames skipped) at the file's end."""
    from facecam.realtime.batch import job_options, open_models
    from facecam.realtime.video_reader import VideoReader

    segmenter, verifier = open_models(spec)
    opts = job_options(spec, verifier, None)
    stream, running, frames = None, None, 0
    with VideoReader(source, decode_threads=1) as reader:
        for index, image in enumerate(reader.frames(keep=lambda i: part_run_by(worker, i, plan) is not None)):
            seconds = reader.take_frame_time(index)
            if max_frames and index >= max_frames:
                break
            frames = index + 1
            part = part_run_by(worker, index, plan)
            if part is None:
                continue
            if part != running:
                allowed.get()
                stream, running = opts.stream(segmenter, plan.fps), part
            result = stream.process(image)
            if index >= part_start(part, plan):  # not a warm-up frame
                results.put(("frame", index, seconds, result.image, len(result.faces)))
            if index + 1 == part_start(part + 1, plan):  # said at once: the parent need not
                results.put(("part", part))  # wait while this worker decodes the frames it passes over
                running = None
        results.put(("end", frames, reader.skipped))

"""Running a batch's files on this machine: one after the other in this process (``--jobs 1``),
or N at a time in worker processes (``--jobs N``, spawned: onnxruntime does not survive a fork),
with the batch's progress bar and one line per file (see realtime.batch_cli, the command).
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tqdm import tqdm

from facecam.realtime.batch import FileResult, FileTask, process_file
from facecam.realtime.video_reader import estimated_frames


def _capped(frames: int, max_frames: int) -> int:
    return min(frames, max_frames) if max_frames else frames


class BatchProgress:
    """One bar for the batch (frames done, rate, ETA; the files in its label) and one line per file.

    Each file counts with the container's own frame count until it ends, then with what it really
    gave (a failed file with nothing), so the ETA stays honest. No bar where stderr is not a terminal
    (tqdm's ``disable=None``): a log or a test then reads only the lines."""

    def __init__(self, tasks: list[FileTask], already: int) -> None:
        self.expected = {t.index: _capped(estimated_frames(t.source), t.spec.max_frames) for t in tasks}
        self.counted: dict[int, int] = {}
        self.files, self.ended = len(tasks) + already, already
        total = sum(self.expected.values())
        self.bar = tqdm(total=total, desc=self._label(), unit="frame", disable=None, file=sys.stderr, leave=False)

    def _label(self) -> str:
        return f"{self.ended}/{self.files} files"

    def frames(self, index: int, done: int) -> None:
        step = done - self.counted.get(index, 0)
        if step > 0:
            self.counted[index] = done
            self.bar.update(step)

    def finished(self, task: FileTask, result: FileResult) -> None:
        counted = self.counted.pop(task.index, 0)
        final = max(result.frames, counted)
        self.bar.total += final - self.expected.pop(task.index, 0)
        self.bar.update(final - counted)
        self.ended += 1
        self.bar.set_description(self._label(), refresh=False)
        self.say(result)

    def say(self, result: FileResult, position: int | None = None) -> None:
        tqdm.write(f"facecam: [{position or self.ended}/{self.files}] {result_line(result)}", file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def result_line(r: FileResult) -> str:
    """One file's outcome in one line."""
    name = Path(r.source).name
    if r.status == "done":
        text = (
            f"{name}: {r.frames} frames, {r.fps:.1f} FPS, {r.faces_per_frame:.2f} faces/frame, "
            f"{r.seconds:.1f} s -> {r.output}"
        )
    elif r.status == "skipped":
        text = f"{name}: already done ({r.frames} frames) -> {r.output}"
    elif r.status == "failed":
        text = f"{name}: FAILED: {r.error}"
    elif r.status == "interrupted":
        text = f"{name}: interrupted after {r.frames} frames; not marked done, a re-run does it again"
    else:
        text = f"{name}: not started"
    return "; ".join([text, *r.notes])


def run_here(tasks: list[FileTask], progress: BatchProgress, on_result) -> None:
    """``--jobs 1``: one file after the other, in this process (no start-up cost; each file's parts
    on worker processes where its task says so, see parts_per_file)."""
    for task in tasks:
        result = process_file(task, progress.frames)
        on_result(task, result)
        if result.status == "interrupted":  # Ctrl-C reached the file's pipeline, which kept its frames
            raise KeyboardInterrupt


_worker_queue = None  # set in each worker process by _worker_start
_worker_stop = None


def _worker_start(progress_queue, stop) -> None:
    """A worker ignores Ctrl-C (its terminal sends it to every process): the parent then sets
    ``stop``, and each running file ends at its next frame, its frames kept."""
    global _worker_queue, _worker_stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_queue, _worker_stop = progress_queue, stop


def _worker_task(task: FileTask) -> FileResult:
    if _worker_stop.is_set():
        return FileResult(task.source, task.output, "not started")
    return process_file(task, lambda index, done: _worker_queue.put((index, done)), _worker_stop.is_set)


def run_processes(tasks: list[FileTask], jobs: int, progress: BatchProgress, on_result) -> None:
    """``--jobs N``: N worker processes take the files in turn."""
    context = multiprocessing.get_context("spawn")
    progress_queue, stop = context.Queue(), context.Event()
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_worker_start, initargs=(progress_queue, stop)
    ) as pool:
        futures = {pool.submit(_worker_task, task): task for task in tasks}
        try:
            _collect(futures, progress_queue, progress, on_result)
        except KeyboardInterrupt:
            stop.set()
            for future in futures:
                future.cancel()  # those not started yet: reported as such
            _collect({f: t for f, t in futures.items() if not f.cancelled()}, progress_queue, progress, on_result)
            raise


def _collect(futures: dict, progress_queue, progress: BatchProgress, on_result) -> None:
    """Each future's result as it ends, the workers' frame counts in between."""
    pending = set(futures)
    while pending:
        ended, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        _drain(progress_queue, progress)
        for future in ended:
            task = futures.pop(future)
            try:
                result = future.result()
            except BrokenProcessPool as exc:  # a worker killed (out of memory, a crash in a library)
                result = FileResult(task.source, task.output, "failed", error=f"its worker process died ({exc})")
            on_result(task, result)


def _drain(progress_queue, progress: BatchProgress) -> None:
    while True:
        try:
            index, done = progress_queue.get_nowait()
        except queue.Empty:
            return
        progress.frames(index, done)

"""Many videos: the files of a folder or a glob, each through the one-video job (``run_video``).

This module plans a batch (which inputs, which outputs, which are already done) and runs one
file (:func:`process_file`); ``batch_cli`` runs the files one or N at a time on this machine and
``ray_batch`` runs them as Ray tasks. Everything a worker needs travels in a :class:`FileTask`
(plain values, absolute paths), so a worker process or a Ray node rebuilds the job alone.

How a finished output is known: the writer renames its output into place when it closes, but an
interrupted first run also leaves its playable partial file under the final name, so the name
alone proves nothing. After a complete run, :func:`process_file` writes a small *done record*
beside the output (``.NAME.facecam.json``, hidden) holding the source's size and modification
time, the output's size and modification time, and the options that shape the picture. An
output is skipped only when its record matches all of them; a truncated or replaced output, a
changed source or other options (``--mode``, ``--model``...) make the file be done again.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from facecam.errors import FacecamError, interrupts_deferred, one_line
from facecam.realtime.video_io import CONTAINERS, check_output_path

#: what a folder's listing takes as a video (any case); the writer writes only CONTAINERS
VIDEO_SUFFIXES = (*CONTAINERS, ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
#: the done record beside an output: ``.NAME`` + this
RECORD_SUFFIX = ".facecam.json"
#: what can become of a file
STATUSES = ("done", "skipped", "failed", "interrupted", "not started")
#: seconds between two progress reports of a running file (each one crosses a process boundary)
PROGRESS_EVERY = 0.25


@dataclass(frozen=True)
class BatchSpec:
    """The options of every file's job, as plain values (a worker opens its own models)."""

    mode: str = "overlay"
    background: str = "green"  # a colour or an absolute image path
    blur_sigma: float = 8.0
    anonymize_style: str = "pixelate"
    anonymize_margin: float = 0.15
    smoothing: float = 0.6
    max_frames: int = 0
    model: str = "facecam_face"  # a name in weights/ or an absolute path
    verifier: str = "facecam_verifier"
    provider: str = "auto"
    threads: int = 0  # onnxruntime threads of each file's job

    def picture_options(self) -> dict:
        """The options that change the output's pixels (not where or how fast it is computed)."""
        values = asdict(self)
        return {k: v for k, v in values.items() if k not in ("provider", "threads")}


@dataclass(frozen=True)
class FileTask:
    """One file of a batch: ``index`` in the batch, absolute ``source`` and ``output``."""

    index: int
    source: str
    output: str
    spec: BatchSpec
    # worker processes on the file's parts at once (realtime/video_parts.py; 1: one process) and
    # each one's inference threads (0: one each); the command's own models keep ``spec.threads``
    parts: int = 1
    part_threads: int = 0


@dataclass
class FileResult:
    """What became of one file; ``status`` is one of STATUSES.

    ``fps`` is the processing rate (frames / the pipeline's seconds, as ``--video`` prints it);
    ``seconds`` the file's whole job (opening, processing, finishing the output)."""

    source: str
    output: str
    status: str
    frames: int = 0
    fps: float = 0.0
    faces: int = 0  # faces tracked, summed over the frames
    faces_per_frame: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # what the job said on stderr (corrupt frames skipped...)


# --- planning ---------------------------------------------------------------------------------


def find_videos(spec: str) -> list[Path]:
    """The videos of ``spec``: a folder (its files with a video suffix, not its subfolders), a glob
    (``**`` reaches into subfolders) or one file; sorted, hidden files left out."""
    path = Path(spec)
    if glob.has_magic(spec):
        found = [Path(p) for p in glob.glob(spec, recursive=True)]
    elif path.is_dir():
        found = list(path.iterdir())
    elif path.is_file():
        found = [path]
    else:
        raise FacecamError(f"--videos {spec}: no such folder or file")
    videos = sorted(p for p in found if p.is_file() and _is_video_name(p))
    if not videos:
        raise FacecamError(f"--videos {spec}: no videos there ({', '.join(VIDEO_SUFFIXES)})")
    return videos


def _is_video_name(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix.lower() in VIDEO_SUFFIXES


def output_suffix(text: str | None) -> str | None:
    """``--suffix``: ``.mp4`` or ``mp4`` -> ``.mp4``; one the writer cannot write is a FacecamError."""
    if text is None:
        return None
    suffix = text if text.startswith(".") else f".{text}"
    if suffix.lower() not in CONTAINERS:
        raise FacecamError(f"--suffix {text}: facecam writes {', '.join(CONTAINERS)}")
    return suffix


def plan_outputs(sources: list[Path], out: Path, suffix: str | None) -> list[tuple[Path, Path]]:
    """(source, output) pairs, all absolute: ``out/STEM`` + the source's suffix (or ``suffix``).

    Checked before any work, so a bad batch changes nothing: ``out`` must be a folder (or not yet
    exist, in an existing folder) that holds no input at any depth, no two inputs may get the same
    output name, the writer must know every suffix, and no output may be an input."""
    out = out.resolve()
    if out.exists() and not out.is_dir():
        raise FacecamError(f"--out {out} is a file; give a folder for the outputs")
    if not out.exists() and not out.parent.is_dir():
        raise FacecamError(f"output folder's parent {out.parent} does not exist")
    # absolute, links kept: an output is named after the name the user sees, not a link's target
    sources = [Path(os.path.abspath(s)) for s in sources]
    for source in sources:
        if out in source.parents or out in source.resolve().parents:  # outputs would mix with (or
            # replace) inputs, and be taken as inputs next time
            raise FacecamError(f"--out {out} holds the input {source}; choose a folder outside the inputs")
    unwritable = sorted({s.suffix for s in sources if (suffix or s.suffix).lower() not in CONTAINERS})
    if unwritable:
        raise FacecamError(
            f"facecam cannot write {', '.join(unwritable)} files; add --suffix .mp4 (or one of {', '.join(CONTAINERS)})"
        )
    pairs, taken = [], {}
    for source in sources:
        target = out / f"{source.stem}{suffix or source.suffix}"
        key = target.name.lower()  # one name on a case-insensitive disk (Windows, macOS)
        if key in taken:
            raise FacecamError(f"{taken[key]} and {source} would both be written as {target.name}; rename one")
        taken[key] = source
        pairs.append((source, target))
    if out.is_dir():
        for _, target in pairs:
            check_output_path(target, tuple(sources))  # a link to an input, a folder in the way, rights
    return pairs


# --- done records -----------------------------------------------------------------------------


def record_path(output: Path) -> Path:
    return output.with_name(f".{output.name}{RECORD_SUFFIX}")


def _identity(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_record(task: FileTask, result: FileResult) -> None:
    """The done record of a complete output, written whole or not at all."""
    output = Path(task.output)
    record = {
        "source": {"path": task.source, **_identity(Path(task.source))},
        "output": _identity(output),
        "options": task.spec.picture_options(),
        "result": {k: getattr(result, k) for k in ("frames", "fps", "faces", "faces_per_frame", "seconds")},
    }
    final = record_path(output)
    tmp = final.with_name(final.name + ".tmp")
    with interrupts_deferred():
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, final)


def completed(task: FileTask) -> FileResult | None:
    """The earlier result of ``task`` when its output is complete and made with these options
    from this source (see the module's docstring); None when the file must be done."""
    source, output = Path(task.source), Path(task.output)
    try:
        record = json.loads(record_path(output).read_text())
        same = (
            record["source"] == {"path": task.source, **_identity(source)}
            and record["output"] == _identity(output)
            and record["options"] == task.spec.picture_options()
        )
        if not same:
            return None
        return FileResult(task.source, task.output, "skipped", **record["result"])
    except (OSError, ValueError, KeyError, TypeError):  # no record, no output, or a record of another shape
        return None


# --- one file ---------------------------------------------------------------------------------

#: (spec's model fields) -> (Segmenter, Verifier | None): each worker process opens them once
_models: dict[tuple, tuple] = {}


def open_models(spec: BatchSpec) -> tuple:
    """The job's Segmenter and Verifier (or None), opened once per process."""
    from facecam.realtime.segmenter import Segmenter
    from facecam.realtime.verifier import open_verifier

    key = (spec.model, spec.verifier, spec.provider, spec.threads)
    if key not in _models:
        _models.clear()  # one set per process: a batch has one spec
        verifier = open_verifier(spec.verifier, spec.provider, spec.threads)
        _models[key] = (Segmenter(spec.model, provider=spec.provider, threads=spec.threads), verifier)
    return _models[key]


def forget_models() -> None:
    """Drop this process's open models (a parent that only checked them)."""
    _models.clear()


def job_options(spec: BatchSpec, verifier, on_frame: Callable[[int], None] | None):
    """The one-video job's options for ``spec`` (a bad drawing option is a FacecamError)."""
    from facecam.realtime.compose import ComposeSettings, parse_background
    from facecam.realtime.runners import JobOptions

    settings = ComposeSettings(
        mode=spec.mode,
        background=parse_background(spec.background),
        blur_sigma=spec.blur_sigma,
        anonymize_style=spec.anonymize_style,
        anonymize_margin=spec.anonymize_margin,
    )
    return JobOptions(
        settings=settings, smoothing=spec.smoothing, max_frames=spec.max_frames, verifier=verifier, on_frame=on_frame
    )


class _Ticker:
    """``on_frame`` of one file: reports frames done at most every PROGRESS_EVERY seconds, and
    stops the file (as Ctrl-C does: the frames written stay, playable) once ``should_stop``."""

    def __init__(self, index: int, report, should_stop) -> None:
        self.index, self.report, self.should_stop = index, report, should_stop
        self.last = time.monotonic()
        self.written = 0  # frames in the output (the pipeline does not count one it was stopped at)

    def __call__(self, frame_index: int) -> None:
        self.written = frame_index + 1
        if self.should_stop is not None and self.should_stop():
            raise KeyboardInterrupt("the batch is stopping")
        now = time.monotonic()
        if self.report is not None and now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.report(self.index, frame_index + 1)


def process_file(
    task: FileTask,
    report: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FileResult:
    """``task``'s video through :func:`run_video`, then its done record. Never raises for the
    file's own faults: a bad file is a ``failed`` result with its one-line error, so the batch
    goes on. ``report(index, frames_done)`` is called now and then while it runs. A Ctrl-C (or
    ``should_stop``) ends the file early: ``interrupted``, its partial output kept, no record.
    ``task.parts`` worker processes run parts of the file at once (realtime/video_parts.py)."""
    from facecam.realtime.runners import run_video

    result = FileResult(task.source, task.output, "failed")
    said = io.StringIO()  # run_video's notices go into the result, not between other files' lines
    start = time.perf_counter()
    ticker = _Ticker(task.index, report, should_stop)
    try:
        segmenter, verifier = open_models(task.spec)
        opts = job_options(task.spec, verifier, ticker)
        if task.parts > 1:
            opts.parts, opts.spec = task.parts, replace(task.spec, threads=task.part_threads)
        with contextlib.redirect_stderr(said):
            stats = run_video(segmenter, Path(task.source), Path(task.output), opts)
    except KeyboardInterrupt:  # (a second Ctrl-C while the first one's run was ending, too)
        result.status = "interrupted"
        result.frames = ticker.written
    except FacecamError as exc:
        result.error = one_line(exc)
    except Exception as exc:  # a bug, but in one file: reported with it, and the batch goes on
        result.error = f"unexpected error: {type(exc).__name__}: {one_line(exc)}"
    else:
        result.frames, result.fps, result.faces = max(stats.frames, ticker.written), stats.fps, stats.faces
        result.faces_per_frame = stats.faces_per_frame
        if stats.interrupted:
            result.status = "interrupted"
        elif stats.frames == 0:
            result.error = "no frame could be decoded; nothing written"
        else:
            result.status = "done"
    result.seconds = time.perf_counter() - start
    result.notes = [line.removeprefix("facecam: ") for line in said.getvalue().splitlines() if line.strip()]
    if result.status == "done":
        try:
            write_record(task, result)
        except OSError as exc:  # the output is fine; only a later run will not know it
            result.notes.append(f"could not write the done record ({exc.strerror or exc}); a re-run redoes it")
        output = Path(task.output)
        stale = output.with_name(f"{output.stem}.partial{output.suffix}")  # the writer's name for one
        if stale.exists():  # left alone: the writer never deletes what a user may want
            result.notes.append(f"{stale.name}, an earlier interrupted run's part, can be deleted")
    return result

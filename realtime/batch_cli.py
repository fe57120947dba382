"""``facecam --videos DIR_OR_GLOB --out DIR [--jobs N] [--suffix .mp4] [--report PATH] [--ray ADDRESS]``.

The flags, the checks made before any work, how many files and parts run at once, the summary
and the report. The files run on this machine one after the other in this process (``--jobs 1``)
or N at a time in worker processes (``--jobs N``), with the cores shared between them (see
realtime.batch_local). ``--ray`` hands the same per-file job to
``ray_batch``. Exit status: 0 when every file is done or was already, 2 when any failed (after
the others ran), 130 when interrupted (the files done so far are kept and recorded as done).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from facecam.cli_args import positive_float, positive_int
from facecam.errors import EXIT_INTERRUPTED, FacecamError, interrupts_deferred
from facecam.realtime import batch
from facecam.realtime.batch import STATUSES, BatchSpec, FileResult, FileTask, completed
from facecam.realtime.batch_local import BatchProgress, run_here, run_processes
from facecam.realtime.providers import pipeline_threads, usable_cores
from facecam.realtime.video_parts import default_workers


def add_batch_options(p: argparse.ArgumentParser, sources) -> None:
    """``--videos`` in the ``sources`` group, and the flags that shape a batch."""
    sources.add_argument(
        "--videos",
        metavar="DIR|GLOB",
        help="many videos: a folder's video files, or a glob such as 'footage/**/*.mp4'; each to --out DIR with "
        "the same name, audio kept; those already done are skipped",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        help="--videos: files at once on this machine, sharing its cores (default: one at a time, its parts at "
        "once in anonymize on the CPU; --jobs 1: each file in one process); --video with --out: parts of the "
        "file at once, in worker processes (default: every core in anonymize on the CPU, else 1)",
    )
    p.add_argument("--suffix", metavar=".EXT", help="--videos: the outputs' suffix (default: each input's own)")
    p.add_argument("--report", type=Path, metavar="PATH", help="--videos: write the per-file figures as JSON")
    p.add_argument(
        "--ray",
        metavar="ADDRESS|auto|local",
        help='--videos: each file as a task on a Ray cluster (pip install "facecam[cluster]"); inputs and --out '
        "on a path every node sees; local: a Ray instance on this machine only",
    )
    p.add_argument("--ray-cpus", type=positive_float, default=1.0, help="--ray: CPUs each file's task asks for")
    p.add_argument("--ray-gpus", type=float, default=0.0, help="--ray: GPUs (or a share, 0.25) each task asks for")


def check_batch_options(args: argparse.Namespace) -> None:
    """Batch flags need ``--videos`` (``--jobs`` also goes with ``--video``: see video_parts_wanted);
    ``--videos`` needs ``--out DIR``."""
    if args.videos is None:
        given = [
            flag
            for flag, value in (
                ("--jobs", args.jobs is not None and args.video is None),
                ("--suffix", args.suffix is not None),
                ("--report", args.report is not None),
                ("--ray", args.ray is not None),
                ("--ray-cpus", args.ray_cpus != 1.0),
                ("--ray-gpus", args.ray_gpus != 0.0),
            )
            if value
        ]
        if given:
            raise FacecamError(
                f"{', '.join(given)} only applies to a batch (--videos DIR|GLOB --out DIR)"
                + ("; --jobs also runs parts of one --video FILE at once" if args.jobs is not None else "")
            )
        return
    if args.out is None:
        raise FacecamError("--videos needs --out DIR for the results")
    if args.stats:  # said, not ignored: each file's frames, FPS and faces are in the batch report
        raise FacecamError(
            "--stats is for one --video, --camera or --images run; a batch reports each file (--report PATH)"
        )
    if args.ray is not None and files_at_once(args) != 1:
        raise FacecamError("--jobs is for this machine; with --ray, --ray-cpus sets each task's share of a node")
    if args.ray is None and (args.ray_cpus != 1.0 or args.ray_gpus != 0.0):
        raise FacecamError("--ray-cpus and --ray-gpus need --ray ADDRESS|auto|local")
    if not 0 <= args.ray_gpus < math.inf:
        raise FacecamError(f"--ray-gpus must be 0 or more, got {args.ray_gpus}")


def _absolute_if_file(text: str) -> str:
    """A path the user gave, made absolute: a worker on another node or in another folder opens it."""
    path = Path(text)
    return str(path.resolve()) if path.is_file() else text


def batch_spec(args: argparse.Namespace, threads: int) -> BatchSpec:
    return BatchSpec(
        mode=args.mode,
        background=_absolute_if_file(args.background),
        blur_sigma=args.blur_sigma,
        anonymize_style=args.anonymize_style,
        anonymize_margin=args.anonymize_margin,
        smoothing=args.smoothing,
        max_frames=args.max_frames,
        model=_absolute_if_file(args.model),
        verifier=_absolute_if_file(args.verifier),
        provider=args.provider,
        threads=threads,
    )


def run_batch(args: argparse.Namespace) -> int:
    """``facecam --videos``: every check, then every file; the report and the exit status at the end."""
    tasks, report, threads = prepare(args)
    cluster = None
    if args.ray is not None:
        from facecam.realtime import ray_batch

        cluster = ray_batch.join(args.ray, args.ray_cpus, args.ray_gpus)  # before anything is written
    try:
        args.out.mkdir(exist_ok=True)
        results, interrupted, wall = run_tasks(args, tasks, cluster)
    finally:
        if cluster is not None:
            ray_batch.leave(cluster)
    print(f"facecam: {summary(results, wall)}", file=sys.stderr)
    if report is not None:
        write_report(report, results, wall, runner=describe_jobs(args, threads, tasks[0].parts if tasks else 1))
        print(f"facecam: report -> {report}", file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    return 2 if any(r.status == "failed" for r in results) else 0


def prepare(args: argparse.Namespace) -> tuple[list[FileTask], Path | None, int]:
    """The batch's tasks, the report's path and each job's threads, once every check has passed."""
    from facecam.realtime.segmenter import resolve_model

    pairs = batch.plan_outputs(batch.find_videos(args.videos), args.out, batch.output_suffix(args.suffix))
    report = check_report_path(args.report, pairs)
    at_once = min(files_at_once(args), len(pairs))  # --jobs 8 for 2 files: 2 share the cores
    if args.threads or args.ray:
        threads = args.threads or max(1, math.ceil(args.ray_cpus))
    else:
        threads = pipeline_threads(0, args.mode, cores=max(1, usable_cores() // at_once))
    spec = batch_spec(args, threads)
    batch.job_options(spec, None, None)  # the drawing options, checked before any work
    parts = 1
    if args.ray is None:
        segmenter, _ = batch.open_models(spec)  # a bad model fails now, once, not once per file
        parts = parts_per_file(args, segmenter.provider)
        print(
            f"facecam: model {segmenter.files_said()} on {segmenter.provider}; {describe_jobs(args, threads, parts)}",
            file=sys.stderr,
        )
        if files_at_once(args) > 1:
            batch.forget_models()  # the workers open their own
    else:
        resolve_model(spec.model)  # the tasks open it on their nodes; a wrong name fails here
    threads_of_parts = args.threads or 0
    tasks = [
        FileTask(i, str(source), str(output), spec, parts, threads_of_parts) for i, (source, output) in enumerate(pairs)
    ]
    return tasks, report, threads


def files_at_once(args: argparse.Namespace) -> int:
    """``--jobs``: the files run at once on this machine (1 when not given)."""
    return args.jobs or 1


def parts_per_file(args: argparse.Namespace, provider: str) -> int:
    """Worker processes on each file's parts (realtime/video_parts.py): when ``--jobs`` is not
    given, as for ``--video`` (video_parts.default_workers: every core in anonymize on the CPU);
    else 1: ``--jobs N`` files at once share the cores already, ``--jobs 1`` asks for one process
    a file, and a Ray task has its share of a node."""
    return default_workers(args.mode, provider) if args.jobs is None and args.ray is None else 1


def run_tasks(args: argparse.Namespace, tasks: list[FileTask], cluster) -> tuple[list[FileResult], bool, float]:
    """Every task not done yet, as asked (here, worker processes, Ray); each file's result in the
    batch's order, whether Ctrl-C stopped it, and the seconds it took."""
    results: dict[int, FileResult] = {}
    todo = []
    for task in tasks:
        earlier = completed(task)
        if earlier is None:
            todo.append(task)
        else:
            results[task.index] = earlier
    progress = BatchProgress(todo, already=len(results))
    for position, result in enumerate(results.values(), 1):
        progress.say(result, position)

    def on_result(task: FileTask, result: FileResult) -> None:
        results[task.index] = result
        progress.finished(task, result)

    start = time.perf_counter()
    interrupted = False
    try:
        if cluster is not None:
            from facecam.realtime.ray_batch import run_on_ray

            run_on_ray(cluster, todo, args.ray_cpus, args.ray_gpus, on_result)
        elif files_at_once(args) > 1 and todo:
            run_processes(todo, min(files_at_once(args), len(todo)), progress, on_result)
        else:
            run_here(todo, progress, on_result)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    ordered = [results.get(task.index, FileResult(task.source, task.output, "not started")) for task in tasks]
    return ordered, interrupted, time.perf_counter() - start


def describe_jobs(args: argparse.Namespace, threads: int, parts: int = 1) -> str:
    if args.ray is not None:
        return f"Ray tasks on {args.ray}, {args.ray_cpus:g} CPU and {args.ray_gpus:g} GPU each, {threads} thread(s)"
    if parts > 1:
        return f"1 file at a time, its parts on up to {parts} worker processes, {args.threads or 1} thread(s) each"
    return f"{files_at_once(args)} file(s) at once, {threads} inference thread(s) each"


def summary(results: list[FileResult], wall: float) -> str:
    counts = {status: sum(r.status == status for r in results) for status in STATUSES}
    text = f"{len(results)} video{'s' if len(results) != 1 else ''} in {wall:.1f} s: " + ", ".join(
        f"{n} {s}" for s, n in counts.items() if n
    )
    failed = [Path(r.source).name for r in results if r.status == "failed"]
    if failed:
        text += f" ({', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''})"
    return text


def check_report_path(path: Path | None, pairs: list[tuple[Path, Path]]) -> Path | None:
    """``--report``: a file in an existing folder, neither an input nor an output."""
    if path is None:
        return None
    path = path.resolve()
    if path.is_dir():
        raise FacecamError(f"--report {path} is a folder; give a file name such as {path / 'report.json'}")
    if not path.parent.is_dir():
        raise FacecamError(f"--report: folder {path.parent} does not exist")
    if any(path == s or path == o for s, o in pairs):
        raise FacecamError(f"--report {path} is one of the batch's videos; choose another file")
    return path


def write_report(path: Path, results: list[FileResult], wall: float, runner: str) -> None:
    """The per-file figures as JSON, written whole (a temporary file renamed) or not at all."""
    data = {
        "runner": runner,
        "wall_seconds": round(wall, 3),
        "videos": len(results),
        **{status.replace(" ", "_"): sum(r.status == status for r in results) for status in STATUSES},
        "frames_processed": sum(r.frames for r in results if r.status == "done"),
        "files": [vars(r) for r in results],
    }
    tmp = path.with_name(f".{path.name}.tmp")
    with interrupts_deferred():
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)

"""One video in parts on several worker processes (realtime/video_parts.py): the plan, which
frames each worker runs, the frames written in order with their times, the same pictures as
each part run alone, a worker's error, Ctrl-C, and the CLI's ``--jobs`` with ``--video``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import assert_clean_error, frame_times, probe, run_cli, write_clip

from facecam.realtime.batch import BatchSpec
from facecam.realtime.providers import usable_cores
from facecam.realtime.video_parts import (
    MIN_PART_WARMS,
    PartPlan,
    part_of,
    part_run_by,
    part_start,
    plan_parts,
    run_parts,
)


def test_a_short_file_is_cut_into_one_part_per_worker():
    plan = plan_parts((360, 640), 25.0, 250, 2)
    assert (plan.workers, plan.part_frames, plan.warm) == (2, 118, 15)
    # the first part is longer by the warm-up the second one runs first: both run 133 frames
    assert part_start(1, plan) == 133 and 250 - part_start(1, plan) + plan.warm <= 133


def test_a_long_file_gets_parts_the_memory_budget_holds():
    # what waits to be written is at most one part a worker
    plan = plan_parts((360, 640), 25.0, 100_000, 2, budget=2**28)
    assert plan.part_frames == 2**28 // (2 * 3 * 360 * 640)


def test_big_frames_get_fewer_workers_rather_than_none():
    # 1080p at 30 fps: 19 warm-up frames, four of them a part, 6.2 MB a frame: the budget holds 2 workers' parts
    plan = plan_parts((1080, 1920), 30.0, 100_000, 8, budget=2**30)
    assert plan.workers == 2 and plan.part_frames >= MIN_PART_WARMS * plan.warm
    assert plan_parts((2160, 3840), 30.0, 100_000, 8, budget=2**30) is None  # 4K: not even two


def test_a_short_file_on_many_cores_gets_the_workers_its_parts_are_long_enough_for():
    plan = plan_parts((360, 640), 25.0, 250, 16)  # 235 frames after the warm-up: 3 parts of 60 or more
    assert plan.workers == 3 and plan.part_frames == 79 >= MIN_PART_WARMS * plan.warm


def test_one_worker_or_parts_too_short_to_be_worth_their_warm_up_run_in_one_process():
    assert plan_parts((360, 640), 25.0, 250, 1) is None
    assert plan_parts((360, 640), 25.0, None, 2) is None  # a file that does not say how long it is
    warm = plan_parts((360, 640), 25.0, 10_000, 2).warm
    assert plan_parts((360, 640), 25.0, 2 * MIN_PART_WARMS * warm + warm - 2, 2) is None
    assert plan_parts((360, 640), 25.0, 2 * MIN_PART_WARMS * warm + warm, 2) is not None


def test_every_frame_is_one_workers_own_and_each_part_after_the_first_is_warmed_up():
    plan = PartPlan(workers=3, part_frames=20, warm=5, fps=25.0)
    assert [part_start(p, plan) for p in range(4)] == [0, 25, 45, 65]
    for index in range(200):
        part = part_of(index, plan)
        assert part_start(part, plan) <= index < part_start(part + 1, plan)
        owners = [w for w in range(3) if part_run_by(w, index, plan) == part]
        assert owners == [part % 3]
        warming = [w for w in range(3) if part_run_by(w, index, plan) == part + 1]
        assert warming == ([(part + 1) % 3] if index >= part_start(part + 1, plan) - 5 else [])


def test_no_warm_up_for_a_part_past_the_frames_the_file_states():
    plan = PartPlan(workers=2, part_frames=20, warm=5, fps=25.0, stated_frames=45)
    assert part_run_by(0, 40, plan) is None  # part 2 would begin at frame 45: there is none
    assert part_run_by(1, 20, plan) == 1


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """96 frames at 12 fps: two parts of 48 for two workers (warm-up 8 frames)."""
    return write_clip(tmp_path_factory.mktemp("parts") / "long.mp4", frames=96)


def _spec(model) -> BatchSpec:
    return BatchSpec(mode="anonymize", model=str(model), verifier="none", threads=1)


def test_parts_write_every_frame_in_order_as_each_part_run_alone_would(tiny_model, long_clip):
    from facecam.api import FaceStream, video_frames

    plan = plan_parts((120, 160), 12.0, 96, 2)
    written = []
    stats, skipped = run_parts(
        _spec(tiny_model), str(long_clip), plan, lambda i, t, image: written.append((i, t, image))
    )
    assert [i for i, _, _ in written] == list(range(96)) and stats.frames == 96 and skipped == 0
    assert [float(t) for _, t, _ in written] == pytest.approx(frame_times(long_clip), abs=1e-3)
    for part in range(2):
        own = part_start(part, plan)
        first = max(0, own - plan.warm)
        frames = itertools.islice(video_frames(long_clip), first, part_start(part + 1, plan))
        with FaceStream(tiny_model, "anonymize", fps=12.0, verifier=None, threads=1) as stream:
            alone = [stream.process(frame).image for frame in frames][own - first :]
        for index, image in enumerate(alone, own):
            assert np.array_equal(written[index][2], image), f"frame {index}"


def test_a_worker_that_fails_is_one_clear_error(tmp_path, long_clip):
    plan = plan_parts((120, 160), 12.0, 96, 2)
    from facecam.errors import FacecamError

    with pytest.raises(FacecamError, match="does not exist"):
        run_parts(_spec(tmp_path / "missing.onnx"), str(long_clip), plan, lambda *a: None)


def test_ctrl_c_while_writing_ends_the_run_with_the_frames_written(tiny_model, long_clip):
    plan = plan_parts((120, 160), 12.0, 96, 2)
    written = []

    def write(index, seconds, image):
        if index == 10:
            raise KeyboardInterrupt
        written.append(index)

    stats, _ = run_parts(_spec(tiny_model), str(long_clip), plan, write)
    assert stats.interrupted and written == list(range(10))


def test_a_second_ctrl_c_while_the_workers_end_waits_until_every_one_has(tiny_model, long_clip, monkeypatch):
    import multiprocessing
    import os
    import signal
    from multiprocessing.process import BaseProcess

    plan = plan_parts((120, 160), 12.0, 96, 2)
    real_join, sent = BaseProcess.join, []

    def join(process, timeout=None):
        if not sent:  # the user presses Ctrl-C again as the first one's run ends
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return real_join(process, timeout)

    def write(index, seconds, image):
        if index == 10:
            raise KeyboardInterrupt  # the first Ctrl-C

    monkeypatch.setattr(BaseProcess, "join", join)
    with pytest.raises(KeyboardInterrupt):  # the second one, once the workers have ended
        run_parts(_spec(tiny_model), str(long_clip), plan, write)
    assert sent and not multiprocessing.active_children()


def test_cli_jobs_runs_a_video_in_parts_with_its_frames_times_and_audio(tiny_model, long_clip, tmp_path):
    out = tmp_path / "parts.mp4"
    args = ("--video", str(long_clip), "--out", str(out), "--mode", "anonymize", "--model", str(tiny_model))
    result = run_cli("facecam", *args, "--jobs", "2", "--no-display")
    assert result.returncode == 0, result.stderr
    assert "2 worker processes at once" in result.stderr
    got = probe(out)
    assert got["frames"] == 96 and got["audio"] == "aac"
    assert frame_times(out) == pytest.approx(frame_times(long_clip), abs=1e-3)


def test_cli_jobs_with_a_video_needs_an_output_file_and_no_stats(tiny_model, long_clip, tmp_path):
    base = ("facecam", "--video", str(long_clip), "--model", str(tiny_model), "--jobs", "2")
    assert_clean_error(run_cli(*base), "--jobs", "--out")
    assert_clean_error(run_cli(*base, "--out", str(tmp_path / "o.mp4"), "--stats"), "--stats")


def test_jobs_with_photos_or_a_camera_is_refused(tiny_model, tmp_path):
    result = run_cli("facecam", "--images", str(tmp_path), "--out", str(tmp_path / "o"), "--jobs", "2")
    assert_clean_error(result, "--jobs", "batch")


def test_jobs_with_a_camera_is_refused(tiny_model, tmp_path):
    assert_clean_error(run_cli("facecam", "--camera", "7", "--model", str(tiny_model), "--jobs", "2"), "--jobs")


@pytest.mark.parametrize(
    ("mode", "jobs", "out", "stats", "provider", "expected"),
    [
        ("anonymize", None, "o.mp4", False, "CPUExecutionProvider", "cores"),  # a crowd's faces step is the slow one
        ("anonymize", None, "o.mp4", False, "CUDAExecutionProvider", 1),  # one device, kept busy by one process
        ("blur", None, "o.mp4", False, "CPUExecutionProvider", 1),  # one process keeps the cores busy already
        ("anonymize", None, None, False, "CPUExecutionProvider", 1),  # a window: frames shown as they come
        ("anonymize", None, "o.mp4", True, "CPUExecutionProvider", 1),  # --stats times the stages of one run
        ("blur", 3, "o.mp4", False, "CUDAExecutionProvider", 3),  # asked for
    ],
)
def test_how_many_parts_a_video_runs_in(mode, jobs, out, stats, provider, expected, monkeypatch):
    import argparse

    from facecam.realtime import cli, video_parts

    monkeypatch.setattr(video_parts, "usable_cores", lambda: 6)
    args = argparse.Namespace(video="in.mp4", jobs=jobs, out=out, mode=mode, stats=stats)
    workers = cli.video_parts_wanted(args, display=out is None) or video_parts.default_workers(mode, provider)
    assert workers == (6 if expected == "cores" else expected)


@pytest.mark.parametrize(
    ("mode", "jobs", "ray", "provider", "expected"),
    [
        ("anonymize", None, None, "CPUExecutionProvider", "cores"),  # one file at a time: its parts at once
        ("blur", None, None, "CPUExecutionProvider", 1),
        ("anonymize", 1, None, "CPUExecutionProvider", 1),  # --jobs 1: one process a file, as asked
        ("anonymize", 2, None, "CPUExecutionProvider", 1),  # files at once already share the cores
        ("anonymize", None, "auto", "CPUExecutionProvider", 1),  # a Ray task has its share of a node
        ("anonymize", None, None, "CUDAExecutionProvider", 1),  # one device, kept busy by one process
    ],
)
def test_how_many_parts_each_file_of_a_batch_runs_in(mode, jobs, ray, provider, expected, monkeypatch):
    import argparse

    from facecam.realtime import batch_cli, video_parts

    monkeypatch.setattr(video_parts, "usable_cores", lambda: 6)
    args = argparse.Namespace(mode=mode, jobs=jobs, ray=ray)
    assert batch_cli.parts_per_file(args, provider) == (6 if expected == "cores" else expected)


def test_a_batch_in_parts_keeps_the_command_s_threads_for_a_file_run_whole(tiny_model, tmp_path, monkeypatch):
    # a file the plan runs in one process (short, no frame count) still gets the command's threads
    from facecam.realtime import batch_cli, cli, video_parts

    videos = tmp_path / "videos"
    videos.mkdir()
    write_clip(videos / "a.mp4", frames=3, fps=12, size=(48, 64))
    monkeypatch.setattr(batch_cli, "usable_cores", lambda: 4)
    monkeypatch.setattr(video_parts, "usable_cores", lambda: 4)
    argv = ["--videos", str(videos), "--out", str(tmp_path / "out"), "--mode", "anonymize"]
    args = cli.parser().parse_args([*argv, "--model", str(tiny_model), "--verifier", "none"])
    (task,), _, threads = batch_cli.prepare(args)
    assert task.spec.threads == threads == 4 and (task.parts, task.part_threads) == (4, 0)
    args = cli.parser().parse_args([*argv, "--model", str(tiny_model), "--jobs", "1", "--threads", "3"])
    (task,), _, _ = batch_cli.prepare(args)
    assert task.spec.threads == 3 and task.parts == 1


@pytest.mark.skipif(usable_cores() < 2, reason="parts need two cores")
def test_a_batch_in_anonymize_runs_each_file_in_parts_with_its_frames_and_audio(tiny_model, long_clip, tmp_path):
    import json
    import shutil

    videos, out = tmp_path / "videos", tmp_path / "out"
    videos.mkdir()
    shutil.copy(long_clip, videos / "a.mp4")
    report = tmp_path / "report.json"
    args = ("--videos", str(videos), "--out", str(out), "--mode", "anonymize", "--model", str(tiny_model))
    result = run_cli("facecam", *args, "--verifier", "none", "--report", str(report))
    assert result.returncode == 0, result.stderr
    assert "its parts on up to" in result.stderr and "worker processes at once" in result.stderr
    got = probe(out / "a.mp4")
    assert got["frames"] == 96 and got["audio"] == "aac"
    assert frame_times(out / "a.mp4") == pytest.approx(frame_times(long_clip), abs=1e-3)
    (entry,) = json.loads(report.read_text())["files"]
    assert entry["status"] == "done" and entry["frames"] == 96


def test_max_frames_ends_the_parts_there(tiny_model, long_clip):
    plan = plan_parts((120, 160), 12.0, 96, 2)  # part 1 from frame 56: both workers stop in their part
    written = []
    stats, _ = run_parts(_spec(tiny_model), str(long_clip), plan, lambda i, t, image: written.append(i), 70)
    assert written == list(range(70)) and stats.frames == 70


def test_a_worker_killed_mid_run_is_one_clear_error_and_the_frames_written_stay(tiny_model, long_clip):
    import multiprocessing
    import os
    import signal

    from facecam.errors import FacecamError

    plan = plan_parts((120, 160), 12.0, 96, 2)
    written = []

    def write(index, seconds, image):
        if index == 5:  # the second worker, mid-run (out of memory, say)
            os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)
        written.append(index)

    with pytest.raises(FacecamError, match="stopped"):
        run_parts(_spec(tiny_model), str(long_clip), plan, write)
    assert written[:6] == list(range(6))


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_command_is_killed(tiny_model, tmp_path):
    import os
    import time

    from conftest import start_cli

    clip = write_clip(tmp_path / "long.mp4", frames=3000)  # about 9 s of work: killed long before
    process = start_cli(
        "facecam",
        "--video",
        str(clip),
        "--out",
        str(tmp_path / "o.mp4"),
        "--mode",
        "anonymize",
        "--model",
        str(tiny_model),
        "--jobs",
        "2",
    )

    def children() -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if entry.isdigit() and int(stat.read().rsplit(")", 1)[1].split()[1]) == process.pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
        return found

    deadline = time.monotonic() + 60
    while len(children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = children()
    assert len(workers) >= 2, "the workers never started"
    time.sleep(0.5)
    assert process.poll() is None, "the run ended before it could be killed: make the clip longer"
    process.kill()  # SIGKILL: no chance to stop them itself
    process.wait()
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") and _running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(os.path.exists(f"/proc/{pid}") and _running(pid) for pid in workers)


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie, ended and not yet reaped by anyone, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_matroska_file_states_its_frames_through_its_duration(tmp_path):
    import av

    from facecam.realtime.video_reader import estimated_frames

    clip = write_clip(tmp_path / "c.mp4", frames=48, audio=False)
    mkv = tmp_path / "c.mkv"
    with av.open(str(clip)) as source, av.open(str(mkv), "w") as target:
        stream = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    assert abs(estimated_frames(str(mkv)) - 48) <= 1

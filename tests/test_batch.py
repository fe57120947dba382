"""`facecam --videos DIR_OR_GLOB --out DIR`: every file through the one-video job, a corrupt one
reported without stopping the others, complete outputs skipped and half-written ones redone,
`--jobs N` worker processes, Ctrl-C, `--report`, and the same batch as Ray tasks."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import _cli_command, assert_clean_error, probe, run_cli, start_cli, write_clip

from facecam.realtime import batch

FAST = ("--verifier", "none")  # the verifier is not what a batch tests


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three ~1 s clips with audio (of different lengths) and one corrupt 'video'."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, frames in (("a", 12), ("b", 14), ("c", 10)):
        write_clip(videos / f"{name}.mp4", frames=frames, fps=12, size=(72, 96))
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 12)  # a torn header
    return videos


def batch_cli(videos, out, model, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("facecam", "--videos", str(videos), "--out", str(out), "--model", str(model), *FAST, *extra)


def in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """The command run in this process (its checks need no fresh interpreter: faster), as run_cli reports it."""
    from facecam.realtime import cli

    sigterm = signal.getsignal(signal.SIGTERM)  # the command sets its own; pytest gets its back
    try:
        code = cli.main(list(args))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return subprocess.CompletedProcess(args, code, "", capsys.readouterr().err)


def report_of(path: Path) -> dict[str, dict]:
    return {Path(f["source"]).name: f for f in json.loads(path.read_text())["files"]}


def assert_outputs_match(folder: Path, out: Path, report: dict[str, dict], names=("a", "b", "c")) -> None:
    """Every frame and the audio of each clip are in its output, and the report says so."""
    for name in names:
        got, src = probe(out / f"{name}.mp4"), probe(folder / f"{name}.mp4")
        assert got["frames"] == src["frames"] == report[f"{name}.mp4"]["frames"]
        assert got["audio"] == "aac"
        assert report[f"{name}.mp4"]["output"] == str((out / f"{name}.mp4").resolve())


def test_a_folder_with_a_corrupt_file_then_a_rerun_that_skips_and_redoes(tiny_model, folder, tmp_path):
    out, report = tmp_path / "out", tmp_path / "report.json"
    first = batch_cli(folder, out, tiny_model, "--report", str(report))
    assert first.returncode == 2, first.stderr  # something failed: said by the exit status
    assert "Traceback" not in first.stderr
    assert "broken.mp4: FAILED: " in first.stderr and "3 done, 1 failed (broken.mp4)" in first.stderr
    files = report_of(report)
    assert [files[n]["status"] for n in ("a.mp4", "b.mp4", "c.mp4", "broken.mp4")] == ["done"] * 3 + ["failed"]
    assert "not a readable video" in files["broken.mp4"]["error"]
    assert_outputs_match(folder, out, files)
    for name in ("a", "b", "c"):  # the figures are the run's own: faces summed over the frames
        entry = files[f"{name}.mp4"]
        assert entry["fps"] > 0 and entry["seconds"] > 0 and entry["error"] is None
        assert entry["faces_per_frame"] == pytest.approx(entry["faces"] / entry["frames"])
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["a.mp4", "b.mp4", "c.mp4"]

    # Half-written: the first bytes of a finished file, as a crash or a full disk would leave it.
    truncated = out / "b.mp4"
    truncated.write_bytes(truncated.read_bytes()[:3000])
    kept = {n: (out / n).stat().st_mtime_ns for n in ("a.mp4", "c.mp4")}
    second = batch_cli(folder, out, tiny_model, "--report", str(report), "--jobs", "2")
    assert second.returncode == 2, second.stderr
    files = report_of(report)
    assert {n: f["status"] for n, f in files.items()} == {
        "a.mp4": "skipped",
        "b.mp4": "done",
        "broken.mp4": "failed",
        "c.mp4": "skipped",
    }
    assert {n: (out / n).stat().st_mtime_ns for n in kept} == kept  # not written again
    assert_outputs_match(folder, out, files)  # a skipped file reports its earlier figures


def test_other_options_or_a_changed_source_redo_a_file(tiny_model, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    clip = write_clip(videos / "a.mp4", frames=8, fps=12, size=(72, 96), audio=False)
    out, report = tmp_path / "out", tmp_path / "r.json"
    assert batch_cli(videos, out, tiny_model).returncode == 0
    for extra, status in ((("--mode", "blur"), "done"), (("--mode", "blur"), "skipped"), ((), "done")):
        result = batch_cli(videos, out, tiny_model, "--report", str(report), *extra)
        assert result.returncode == 0 and report_of(report)["a.mp4"]["status"] == status, (extra, result.stderr)
    write_clip(clip, frames=9, fps=12, size=(72, 96), audio=False)  # re-recorded
    assert batch_cli(videos, out, tiny_model, "--report", str(report)).returncode == 0
    assert report_of(report)["a.mp4"]["status"] == "done" and probe(out / "a.mp4")["frames"] == 9


def test_which_files_are_videos(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.MOV", "a.mp4", ".hidden.mp4", "notes.txt", "sub/c.mkv"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in batch.find_videos(str(tmp_path))] == ["a.mp4", "b.MOV"]  # not into sub/
    assert [p.name for p in batch.find_videos(f"{tmp_path}/**/*.m*")] == ["a.mp4", "c.mkv"]  # globs are exact
    assert [p.name for p in batch.find_videos(str(tmp_path / "b.MOV"))] == ["b.MOV"]


def test_outputs_are_named_as_the_inputs_are_seen(tmp_path):
    store, videos, out = tmp_path / "store", tmp_path / "videos", tmp_path / "out"
    store.mkdir()
    videos.mkdir()
    (store / "0xa1b2.mp4").write_bytes(b"x")
    (videos / "cam1.mp4").symlink_to(store / "0xa1b2.mp4")
    pairs = batch.plan_outputs(batch.find_videos(str(videos)), out, ".mkv")
    assert [(s.name, o.name) for s, o in pairs] == [("cam1.mp4", "cam1.mkv")]  # the link's name, not its target's
    with pytest.raises(batch.FacecamError, match="holds the input"):  # where the link's target lives
        batch.plan_outputs(batch.find_videos(str(videos)), store, None)


def test_bad_batches_fail_cleanly_and_change_nothing(tiny_model, folder, tmp_path, capsys):
    (tmp_path / "file.mp4").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    other = tmp_path / "other"
    other.mkdir()
    write_clip(other / "a.mov", frames=2, audio=False)
    (other / "clip.webm").write_bytes(b"x")
    m = str(tiny_model)
    videos, out = str(folder), str(tmp_path / "out")
    with socket.socket() as closed:  # a port nothing listens on once this is closed
        closed.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{closed.getsockname()[1]}"
    cases = [
        (("--videos", str(tmp_path / "nope"), "--out", out), "no such folder"),
        (("--videos", str(tmp_path / "empty"), "--out", out), "no videos there"),
        (("--videos", str(tmp_path / "nope" / "*.mp4"), "--out", out), "no videos there"),
        (("--videos", videos), "needs --out"),
        (("--videos", videos, "--out", str(tmp_path / "file.mp4")), "is a file"),
        (("--videos", videos, "--out", videos), "holds the input"),
        (("--videos", str(tmp_path), "--out", str(tmp_path / "nodir" / "x")), "does not exist"),
        (("--videos", f"{tmp_path}/*/a.m*", "--out", out, "--suffix", ".mkv"), "would both be written as a.mkv"),
        (("--videos", str(other), "--out", out), "cannot write .webm files; add --suffix .mp4"),
        (("--videos", videos, "--out", out, "--suffix", "gif"), "facecam writes .mp4"),
        (("--videos", videos, "--out", out, "--report", str(tmp_path)), "is a folder"),
        (("--videos", videos, "--out", out, "--report", str(folder / "a.mp4")), "one of the batch's videos"),
        (("--videos", videos, "--out", out, "--ray", "auto", "--jobs", "2"), "--jobs is for this machine"),
        (("--videos", videos, "--out", out, "--ray-cpus", "2"), "need --ray"),
        (("--videos", videos, "--out", out, "--ray", nobody), "nothing answers at"),  # at once, not in minutes
        (("--videos", videos, "--out", out, "--mode", "replace", "--background", "nope.png"), "background"),
        (("--videos", videos, "--out", out, "--jobs", "0"), "must be >= 1"),
        (("--videos", videos, "--out", out, "--stats"), "a batch reports each file"),
    ]
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    for args, fragment in cases:
        assert_clean_error(in_process(capsys, *args, "--model", m), fragment)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    assert probe(folder / "a.mp4")["frames"] == 12


def test_without_ray_installed_says_how_to_get_it(tiny_model, folder, tmp_path):
    argv, env = _cli_command(("facecam",))
    code = "import sys; sys.modules['ray'] = None; from facecam.realtime.cli import main; sys.exit(main())"
    args = ["--videos", str(folder), "--out", str(tmp_path / "out"), "--model", str(tiny_model), "--ray", "auto"]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60)
    assert_clean_error(result, 'pip install "facecam[cluster]"')


def test_ctrl_c_stops_the_workers_and_a_rerun_finishes(tiny_model, tmp_path):
    videos, out, report = tmp_path / "videos", tmp_path / "out", tmp_path / "r.json"
    videos.mkdir()
    for name in ("a", "b", "c"):
        write_clip(videos / f"{name}.mp4", frames=300, fps=30, size=(72, 96))
    args = ("--videos", str(videos), "--out", str(out), "--model", str(tiny_model), *FAST, "--jobs", "2")
    proc = start_cli("facecam", *args, "--report", str(report))
    deadline = time.monotonic() + 60
    while not list(out.glob(".*.partial.mp4")) and time.monotonic() < deadline:  # a file is being written
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # to the parent only: it must stop its workers itself
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    statuses = {f["status"] for f in report_of(report).values()}
    assert "interrupted" in statuses and statuses <= {"interrupted", "not started", "done"}, stderr
    again = run_cli("facecam", *args, "--report", str(report))
    assert again.returncode == 0, again.stderr
    files = report_of(report)
    assert all(probe(out / f"{n}.mp4")["frames"] == files[f"{n}.mp4"]["frames"] == 300 for n in ("a", "b", "c"))


@pytest.mark.slow
def test_the_same_batch_as_ray_tasks_on_a_local_instance(tiny_model, folder, tmp_path):
    pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[cluster]")')
    here, there = tmp_path / "here", tmp_path / "ray"
    assert batch_cli(folder, here, tiny_model, "--report", str(tmp_path / "here.json")).returncode == 2
    # The test starts the instance (2 CPUs), as a cluster's head node would be started; facecam joins it.
    argv, env = _cli_command(("facecam",))
    code = (
        "import sys, ray; ray.init(num_cpus=2, include_dashboard=False); "
        "from facecam.realtime.cli import main; sys.exit(main())"
    )
    args = ["--videos", str(folder), "--out", str(there), "--model", str(tiny_model), *FAST, "--ray", "auto"]
    result = subprocess.run(
        [sys.executable, "-c", code, *args, "--report", str(tmp_path / "ray.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "Ray cluster with 2 CPUs" in result.stderr and "broken.mp4: FAILED" in result.stderr
    files = report_of(tmp_path / "ray.json")
    assert files["broken.mp4"]["status"] == "failed"
    assert_outputs_match(folder, there, files)
    for name in ("a", "b", "c"):
        assert probe(there / f"{name}.mp4")["frames"] == probe(here / f"{name}.mp4")["frames"]


def test_a_ctrl_c_that_escapes_the_run_reports_the_frames_written(tiny_model, tmp_path, monkeypatch):
    # a second Ctrl-C while the first one's run is ending (its workers being joined) reaches the
    # file's job itself: the frames already written are still its count, not 0
    from facecam.realtime import runners

    def run_video(segmenter, source, output, opts):
        for index in range(5):
            opts.on_frame(index)
        raise KeyboardInterrupt

    monkeypatch.setattr(runners, "run_video", run_video)
    clip = write_clip(tmp_path / "a.mp4", frames=6, fps=12, size=(48, 64))
    spec = batch.BatchSpec(mode="anonymize", model=str(tiny_model), verifier="none", threads=1)
    result = batch.process_file(batch.FileTask(0, str(clip), str(tmp_path / "out.mp4"), spec))
    assert result.status == "interrupted" and result.frames == 5


def test_the_batch_s_last_line_counts_its_videos():
    from facecam.realtime.batch_cli import summary

    one = [batch.FileResult("a.mp4", "o/a.mp4", "done")]
    assert summary(one, 1.0) == "1 video in 1.0 s: 1 done"
    assert summary([*one, batch.FileResult("b.mp4", "o/b.mp4", "failed")], 2.0).startswith(
        "2 videos in 2.0 s: 1 done, 1 failed"
    )

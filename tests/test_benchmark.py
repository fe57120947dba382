"""facecam-bench: the figures it reports, camera-like drops, compare, JSON, chart, bad input."""

from __future__ import annotations

import json

from conftest import assert_clean_error, run_cli

from facecam.realtime.benchmark import BenchConfig, format_table, run_benchmark
from facecam.realtime.camera import PacedFrames


def test_benchmark_reports_every_stage_and_latency(tiny_model, clip):
    result = run_benchmark(BenchConfig(source=str(clip), model=str(tiny_model), warmup=4))
    assert result.frames == 20 and result.fps > 0
    assert set(result.stages_ms) == {"decode", "finder", "crops", "merge", "upsample", "compose", "encode"}
    assert result.faces_per_frame >= 0 and len(result.finder_size) == 2
    assert 0 < result.latency_ms["p50"] <= result.latency_ms["p95"]
    assert result.provider == "CPUExecutionProvider" and result.model == "tiny.onnx"
    assert result.flicker is not None and result.size == [160, 120]
    assert "end-to-end FPS" in format_table([result, result])


def test_camera_like_source_drops_frames_it_cannot_keep_up_with(tiny_model):
    result = run_benchmark(
        BenchConfig(
            source="generated:640x480", model=str(tiny_model), warmup=2, frames=60, camera_fps=1e6, encode=False
        )
    )
    assert result.dropped > 0
    assert result.frames + result.dropped == 60


def test_paced_frames_keep_their_rate():
    import time

    import numpy as np

    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(6)]
    with PacedFrames(frames, fps=20) as cam:
        t0 = time.perf_counter()
        got = [cam.read() for _ in range(6)]
        elapsed = time.perf_counter() - t0
    assert [int(f[0, 0, 0]) for f in got if f is not None] == list(range(6))
    assert elapsed > 0.2  # 6 frames at 20 fps take a quarter of a second


def test_cli_json_compare_and_chart(tiny_model, clip, tmp_path):
    out, chart = tmp_path / "b.json", tmp_path / "b.png"
    result = run_cli(
        "facecam-bench",
        "--source",
        str(clip),
        "--compare",
        str(tiny_model),
        f"{tiny_model}@cpu",
        "--warmup",
        "2",
        "--predecode",
        "--no-encode",
        "--json",
        str(out),
        "--chart",
        str(chart),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["fps"] == report["runs"][0]["fps"] > 0 and len(report["runs"]) == 2
    assert "encode" not in report["runs"][0]["stages_ms"]  # --no-encode
    assert chart.stat().st_size > 1000
    assert "finder ms (median)" in result.stdout and "crops ms (median)" in result.stdout


def test_cli_bad_input(tiny_model, tmp_path):
    m = str(tiny_model)
    assert_clean_error(run_cli("facecam-bench", "--source", "generated:axb", "--model", m), "generated:WIDTHxHEIGHT")
    assert_clean_error(run_cli("facecam-bench", "--source", str(tmp_path / "x.mp4"), "--model", m), "does not exist")
    assert_clean_error(run_cli("facecam-bench", "--compare", "x@warp", "--model", m), "unknown provider")
    assert_clean_error(run_cli("facecam-bench", "--camera-fps", "0", "--model", m), "must be > 0")
    assert_clean_error(
        run_cli("facecam-bench", "--model", m, "--json", str(tmp_path / "no" / "b.json")), "does not exist"
    )

"""``provider="auto"`` on a machine where the GPU providers fail: why is kept, and nothing stops the run.

onnxruntime is made to answer as on a GPU machine with broken libraries: TensorRT raises, CUDA
starts silently on the CPU (what onnxruntime does when a CUDA library is missing).
"""

from __future__ import annotations

import onnxruntime as ort
import pytest

from facecam.errors import FacecamError
from facecam.realtime import providers
from facecam.realtime.providers import PROVIDERS
from facecam.realtime.segmenter import Segmenter

TRT, CUDA, CPU = PROVIDERS["tensorrt"], PROVIDERS["cuda"], PROVIDERS["cpu"]


@pytest.fixture
def broken_gpu(monkeypatch):
    """onnxruntime with all three providers and a driver; returns the providers each session was asked for."""
    real = ort.InferenceSession
    tried = []

    def session(path, options, providers):
        first = providers[0] if isinstance(providers[0], str) else providers[0][0]
        tried.append(first)
        if first == TRT:
            raise RuntimeError("TensorRT EP could not be loaded: libnvinfer.so.10: cannot open shared object file\n...")
        return real(path, options, providers=[CPU])  # CUDA: onnxruntime falls back to the CPU without a word

    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setattr(providers, "nvidia_driver_present", lambda: True)
    return tried


def test_auto_keeps_why_each_gpu_provider_failed(broken_gpu, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with Segmenter(tiny_model, provider="auto") as seg:
        # (a fourth CPU session, if any, is the graph without its final resize: final_resize)
        assert seg.provider == CPU and broken_gpu[:3] == [TRT, CUDA, CPU] and set(broken_gpu[3:]) <= {CPU}
        assert f"{TRT}: TensorRT EP could not be loaded: libnvinfer.so.10" in seg.fallback
        assert f"{CUDA}: onnxruntime fell back to the CPU" in seg.fallback
        assert "\n" not in seg.fallback


def test_no_fallback_reason_when_the_first_provider_starts(tiny_model):
    with Segmenter(tiny_model, provider="cpu") as seg:
        assert seg.fallback == ""


def test_a_home_that_cannot_hold_the_tensorrt_cache_makes_auto_go_on(broken_gpu, tiny_model, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("a file, not a folder: .cache cannot be made in it (as in a read-only home)")
    monkeypatch.setenv("HOME", str(home))
    with Segmenter(tiny_model, provider="auto") as seg:
        assert seg.provider == CPU
        assert TRT not in broken_gpu  # failed before onnxruntime was asked
        assert f"{TRT}: TensorRT's engine cache folder {home / '.cache' / 'facecam' / 'trt'} cannot be made" in (
            seg.fallback
        )
    with pytest.raises(FacecamError, match="engine cache folder .* cannot be made"):
        Segmenter(tiny_model, provider="tensorrt")


def test_the_command_prints_why_it_runs_on_the_cpu(broken_gpu, tiny_model, tmp_path, monkeypatch, capsys):
    from facecam.realtime import cli

    monkeypatch.setenv("HOME", str(tmp_path))
    photos = tmp_path / "photos"
    photos.mkdir()
    import cv2
    import numpy as np

    cv2.imwrite(str(photos / "a.png"), np.zeros((64, 64, 3), np.uint8))
    argv = ["--images", str(photos), "--out", str(tmp_path / "out"), "--model", str(tiny_model), "--verifier", "none"]
    assert cli.main(argv) == 0
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("facecam: model"))
    assert line.endswith(")") and "TensorRT EP could not be loaded" in line and "fell back to the CPU" in line


def test_gpu_libraries_are_preloaded_quietly_before_a_gpu_session_only(
    broken_gpu, tiny_model, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("HOME", str(tmp_path))
    calls = []

    def preload_dlls():
        calls.append(list(broken_gpu))  # the sessions tried before it
        print("WARNING: cuDNN not found in the nvidia site packages")  # what onnxruntime prints

    monkeypatch.setattr(ort, "preload_dlls", preload_dlls, raising=False)
    with Segmenter(tiny_model, provider="cpu"):
        assert calls == []  # a CPU run loads no CUDA library
    broken_gpu.clear()
    with Segmenter(tiny_model, provider="auto") as seg:
        assert seg.provider == CPU
    assert calls[0] == []  # before the first GPU session was asked for
    assert "cuDNN" not in capsys.readouterr().out


def test_an_onnxruntime_without_preload_still_tries_the_gpu(broken_gpu, tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delattr(ort, "preload_dlls", raising=False)
    with Segmenter(tiny_model, provider="auto") as seg:
        assert seg.provider == CPU and broken_gpu[:3] == [TRT, CUDA, CPU]


@pytest.mark.parametrize(
    ("requested", "mode", "camera", "expected"),
    [
        (0, "blur", False, 2),  # half the cores: the compose step has the other half
        (0, "overlay", False, 2),
        (0, "anonymize", False, 4),  # crowds: the faces step is the slow one (a batch job's share)
        (0, "blur", True, 1),  # a camera: the CPU a frame costs
        (0, "anonymize", True, 1),
        (3, "blur", True, 3),  # asked for: kept
    ],
)
def test_pipeline_threads_follow_the_mode_and_the_source(requested, mode, camera, expected):
    assert providers.pipeline_threads(requested, mode, camera, cores=4) == expected


def test_pipeline_threads_never_reach_zero_on_one_core():
    assert providers.pipeline_threads(0, "blur", cores=1) == 1


def test_anonymize_on_its_own_leaves_the_count_to_onnxruntime():
    assert providers.pipeline_threads(0, "anonymize") == 0  # one a physical core, not a hyperthread


@pytest.mark.parametrize(("mode", "expected"), [("blur", 1), ("anonymize", 0)])
def test_the_video_command_hands_the_chosen_threads_to_onnxruntime(
    tiny_model, clip, tmp_path, monkeypatch, mode, expected
):
    from facecam.realtime import cli

    asked = []
    real = providers.session_options
    monkeypatch.setattr(providers, "usable_cores", lambda: 2)
    monkeypatch.setattr(providers, "session_options", lambda threads: asked.append(threads) or real(threads))
    argv = ["--model", str(tiny_model), "--video", str(clip), "--out", str(tmp_path / "o.mp4"), "--mode", mode]
    assert cli.main([*argv, "--max-frames", "3", "--verifier", "none"]) == 0
    assert asked and set(asked) == {expected}


@pytest.mark.parametrize(
    ("mode", "jobs", "expected"), [("blur", 1, 2), ("blur", 2, 1), ("anonymize", 1, 4), ("anonymize", 2, 2)]
)
def test_a_batch_gives_each_job_its_share_of_the_cores_by_mode(tmp_path, monkeypatch, mode, jobs, expected):
    from conftest import write_clip

    from facecam.realtime import batch_cli, cli

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        write_clip(videos / f"{name}.mp4", frames=3, fps=12, size=(48, 64))
    monkeypatch.setattr(batch_cli, "usable_cores", lambda: 4)
    args = cli.parser().parse_args(
        ["--videos", str(videos), "--out", str(tmp_path / "out"), "--mode", mode, "--jobs", str(jobs)]
    )
    assert batch_cli.prepare(args)[2] == expected


@pytest.mark.parametrize(("extra", "expected"), [((), 1), (("--camera-fps", "30"), 1), (("--mode", "anonymize"), 0)])
def test_the_benchmark_hands_the_chosen_threads_to_onnxruntime(tiny_model, clip, monkeypatch, extra, expected):
    from facecam.realtime import bench_cli

    asked = []
    real = providers.session_options
    monkeypatch.setattr(providers, "usable_cores", lambda: 2)
    monkeypatch.setattr(providers, "session_options", lambda threads: asked.append(threads) or real(threads))
    argv = ["--source", str(clip), "--model", str(tiny_model), "--frames", "4", "--warmup", "1", "--verifier", "none"]
    assert bench_cli.main([*argv, "--no-encode", *extra]) == 0
    assert asked and set(asked) == {expected}

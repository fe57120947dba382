"""Shared fixtures: a tiny random-weight model exported to ONNX, a short clip with audio, data sets."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def draw_face_frame(t: float, height: int = 120, width: int = 160) -> np.ndarray:
    """A synthetic frame: grey-blue backdrop, a skin-toned ellipse 'face' moving with t, dark 'hair' on top."""
    frame = np.full((height, width, 3), (150, 120, 90), np.uint8)
    cx, cy = int(width * (0.4 + 0.2 * np.sin(t))), height // 2
    cv2.ellipse(frame, (cx, cy - height // 5), (width // 7, height // 6), 0, 0, 360, (30, 30, 40), -1)
    cv2.ellipse(frame, (cx, cy), (width // 8, height // 4), 0, 0, 360, (120, 160, 220), -1)
    return frame


def write_clip(
    path: Path,
    frames: int = 24,
    fps: int = 12,
    size: tuple[int, int] = (120, 160),
    audio: bool = True,
    noise: float = 0.0,
    times: list[float] | None = None,
) -> Path:
    """An H.264 clip of the moving synthetic face, with a 440 Hz AAC tone when ``audio``.

    ``noise`` adds sensor-like Gaussian noise of that standard deviation (big files compress less).
    ``times`` (seconds, one per frame) makes a variable-frame-rate clip, as phones record."""
    height, width = size
    rng = np.random.default_rng(0)
    frames = len(times) if times is not None else frames
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if times is not None:
            video.time_base = video.codec_context.time_base = Fraction(1, 90000)
        astream = out.add_stream("aac", rate=16000) if audio else None
        for i in range(frames):
            image = draw_face_frame(i / 4, height, width)
            if noise:
                image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
            vf = av.VideoFrame.from_ndarray(image, format="bgr24")
            if times is not None:
                vf.pts = round(times[i] * 90000)
            for packet in video.encode(vf):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if astream is not None:
            seconds = times[-1] + 1 / fps if times is not None else frames / fps
            samples = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * seconds)) / 16000)).astype(np.float32)
            for start in range(0, len(samples), 1024):
                chunk = samples[start : start + 1024][None]
                af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                af.sample_rate = 16000
                af.pts = start
                af.time_base = Fraction(1, 16000)
                for packet in astream.encode(af):
                    out.mux(packet)
            for packet in astream.encode(None):
                out.mux(packet)
    return path


def probe(path: Path) -> dict:
    """Frame count (decoded), size, fps and audio codec of a video file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        count = sum(1 for _ in c.decode(v))
        return {
            "frames": count,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "fps": float(v.average_rate),
            "audio": audio,
        }


def frame_times(path: Path) -> list[float]:
    """When each video frame of ``path`` is shown, in seconds, in presentation order."""
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


def tiny_checkpoint(path: Path, width: int = 4, size: int = 64, seed: int = 0) -> Path:
    """A facecam checkpoint of a random-weight FastUNet (no training), as facecam-train writes it."""
    import torch

    from facecam.model_card import DEFAULT_CLASS_NAMES, IMAGENET_MEAN, IMAGENET_STD
    from facecam.training.checkpoint import save_checkpoint
    from facecam.training.models import build_model

    torch.manual_seed(seed)
    model = build_model("fast_unet", 3, width=width).eval()
    save_checkpoint(
        {
            "model_name": "fast_unet",
            "model_kwargs": {"width": width},
            "num_classes": 3,
            "state_dict": model.state_dict(),
            "card": {
                "input_size": [size, size],
                "mean": list(IMAGENET_MEAN),
                "std": list(IMAGENET_STD),
                "class_names": list(DEFAULT_CLASS_NAMES),
                "face_classes": [1],
            },
            "config": {"command": "tests"},
            "metrics": {"val_dice": 0.5, "val_iou": 0.33},
            "epoch": 1,
            "dataset": "none (random weights)",
        },
        path,
    )
    return path


@pytest.fixture
def int8_exact(monkeypatch) -> None:
    """This CPU taken to run INT8 twins exactly (realtime.cpu_int8): the tests of the twin's
    use then pass on a CPU without VNNI too, where the runtime leaves the twin aside."""
    monkeypatch.setattr("facecam.realtime.segmenter.int8_is_exact_here", lambda: True)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random-weight model exported to ONNX (FP32 and FP16) with the model card."""
    from facecam.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("model")
    export_onnx(tiny_checkpoint(folder / "tiny.pt"), folder / "tiny.onnx", fp16=True)
    return folder / "tiny.onnx"


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """24 frames, 160x120, 12 fps, H.264 with an AAC audio track."""
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


def _cli_command(args: tuple[str, ...]) -> tuple[list[str], dict]:
    """argv and environment to run a console command of this package (no screen: DISPLAY unset)."""
    module = {
        "facecam": "facecam.realtime.cli",
        "facecam-train": "facecam.training.cli",
        "facecam-export": "facecam.export.cli",
        "facecam-bench": "facecam.realtime.bench_cli",
    }[args[0]]
    code = f"import sys; from {module} import main; sys.exit(main())"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    return [sys.executable, "-c", code, *args[1:]], env


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a console command of this package in a subprocess (as a user would), capturing output."""
    argv, env = _cli_command(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def start_cli(*args: str) -> subprocess.Popen:
    """Start a console command in the background (stderr piped), e.g. to send it a signal."""
    argv, env = _cli_command(args)
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """One line on stderr naming the problem, non-zero exit, no traceback."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("facecam: model ")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), lines[0]


PARTS_DRAWN = ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip", "mouth", "hair", "eye_g", "neck")


def make_celebamask(root: Path, count: int = 8, size: int = 64) -> Path:
    """A tiny CelebAMask-HQ in its exact layout: N.jpg photos at 2x the mask size, part masks per 2000-folder."""
    (root / "CelebA-HQ-img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        m = size // 2
        parts = {p: np.zeros((m, m), np.uint8) for p in PARTS_DRAWN}
        cx, cy = m // 2 + int(rng.integers(-3, 4)), m // 2
        cv2.ellipse(parts["skin"], (cx, cy), (m // 4, m // 3), 0, 0, 360, 255, -1)
        cv2.ellipse(parts["hair"], (cx, cy - m // 3), (m // 3, m // 6), 0, 0, 360, 255, -1)
        cv2.rectangle(parts["neck"], (cx - 4, cy + m // 3), (cx + 4, m - 1), 255, -1)
        cv2.circle(parts["l_eye"], (cx - 5, cy - 3), 2, 255, -1)
        cv2.circle(parts["r_eye"], (cx + 5, cy - 3), 2, 255, -1)
        cv2.rectangle(parts["eye_g"], (cx - 9, cy - 5), (cx + 9, cy - 1), 255, -1)  # glasses over the eyes
        cv2.line(parts["u_lip"], (cx - 4, cy + 6), (cx + 4, cy + 6), 255, 1)
        image = np.full((size, size, 3), (200, 180, 160), np.uint8)
        big = {p: cv2.resize(v, (size, size), interpolation=cv2.INTER_NEAREST) for p, v in parts.items()}
        image[big["skin"] > 0] = (120, 150, 210)
        image[big["hair"] > 0] = (30, 30, 40)
        image[big["eye_g"] > 0] = (20, 20, 20)
        cv2.imwrite(str(root / "CelebA-HQ-img" / f"{i}.jpg"), image)
        folder = root / "CelebAMask-HQ-mask-anno" / str(i // 2000)
        folder.mkdir(parents=True, exist_ok=True)
        for part, mask in parts.items():
            if mask.any():
                cv2.imwrite(str(folder / f"{i:05d}_{part}.png"), mask)
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """make_celebamask prepared into the facecam layout at 64 px: 6 train and 2 val photos (one per module)."""
    src = make_celebamask(tmp_path_factory.mktemp("celeba") / "CelebAMask-HQ")
    out = src.parent / "prepared"
    from facecam.training.celebamask import PrepareConfig, prepare_celebamask

    counts = prepare_celebamask(PrepareConfig(src=src, out=out, size=64, val_count=2), progress=False)
    assert counts == {"train": 6, "val": 2}
    return out

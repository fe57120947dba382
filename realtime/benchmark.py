"""End-to-end benchmark of the facecam pipeline: FPS, per-stage time, latency, drops, flicker.

The figures are those of the whole tool (decode -> preprocess -> inference -> smoothing ->
compose -> encode, overlapped in threads), never of the model alone. Each run warms up on
its first frames, then times the rest with ``perf_counter``.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from facecam.api import FaceStream
from facecam.errors import close_during_error
from facecam.realtime.camera import PacedFrames, frames_until_end
from facecam.realtime.compose import ComposeSettings
from facecam.realtime.passes import finder_size
from facecam.realtime.pipeline import Frame, Pipeline
from facecam.realtime.segmenter import Segmenter
from facecam.realtime.stats import STAGES, RunStats
from facecam.realtime.verifier import open_verifier
from facecam.realtime.video_io import VideoWriter
from facecam.realtime.video_reader import VideoReader

#: the stage the pipeline calls "output" is encoding in a benchmark
STAGE_LABELS = {s: ("encode" if s == "output" else s) for s in STAGES}


@dataclass
class BenchConfig:
    """One benchmark run (defaults: blur mode, every frame, 30 warm-up frames, encoded to H.264)."""

    source: str  # a video path, or "generated:WxH" for a synthetic clip
    mode: str = "blur"
    model: str | None = None
    provider: str = "auto"
    threads: int = 0
    verifier: str | None = "facecam_verifier"  # keeps the full-frame pass's proposals that are faces; None: all
    frames: int = 0  # timed frames (0 = all the source has after warm-up)
    warmup: int = 30
    predecode: bool = False  # decode into memory first: decode time excluded, as MediaPipe's anchor does
    encode: bool = True
    camera_fps: float = 0.0  # > 0: deliver frames like a camera at this rate, newest frame only
    smoothing: float = 0.6


@dataclass
class BenchResult:
    """The figures of one run; ``fps`` is end-to-end."""

    fps: float
    frames: int
    stages_ms: dict[str, float]
    latency_ms: dict[str, float]
    dropped: int
    flicker: float | None
    provider: str
    model: str
    mode: str
    source: str
    size: list[int]
    finder_size: list[int]  # the full-frame pass (height, width)
    faces_per_frame: float  # faces tracked, averaged over the timed frames
    # process CPU time (every thread, every core) over the timed frames, per frame, less the flicker meter's
    cpu_ms_per_frame: float
    config: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def generated_frames(width: int, height: int, count: int) -> Iterator[np.ndarray]:
    """A synthetic talking-head-like clip: a skin-toned face swaying over a textured backdrop."""
    rng = np.random.default_rng(0)
    backdrop = cv2.GaussianBlur(rng.integers(60, 200, (height, width, 3), dtype=np.uint8), (0, 0), 6)
    for i in range(count):
        frame = backdrop.copy()
        cx = int(width * (0.5 + 0.1 * np.sin(i / 15)))
        cy = int(height * 0.45)
        cv2.ellipse(frame, (cx, cy + height // 3), (width // 4, height // 5), 0, 0, 360, (90, 60, 40), -1)
        cv2.ellipse(frame, (cx, cy - height // 9), (width // 9, height // 8), 0, 0, 360, (40, 40, 50), -1)
        cv2.ellipse(frame, (cx, cy), (width // 10, height // 6), 0, 0, 360, (120, 150, 205), -1)
        yield frame


def _parse_generated(source: str) -> tuple[int, int]:
    from facecam.errors import FacecamError

    try:
        width, height = (int(v) for v in source.split(":", 1)[1].lower().split("x"))
    except ValueError as exc:
        raise FacecamError(f"source {source!r}: write generated:WIDTHxHEIGHT, e.g. generated:640x480") from exc
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise FacecamError(f"source {source!r}: sides must be 16..8192")
    return width, height


class _Source:
    """Frames of a video file or a generated clip, with the clip's size and rate."""

    def __init__(self, spec: str, limit: int) -> None:
        self.reader = None
        if spec.startswith("generated:"):
            self.width, self.height = _parse_generated(spec)
            self.fps = Fraction(30)
            self._frames = generated_frames(self.width, self.height, limit or 300)
        else:
            self.reader = VideoReader(spec)
            self.width, self.height, self.fps = self.reader.width, self.reader.height, self.reader.fps
            frames = self.reader.frames()
            self._frames = itertools.islice(frames, limit) if limit else frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self._frames)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _summarise(stats: RunStats) -> tuple[dict[str, float], dict[str, float]]:
    stages = {STAGE_LABELS[s]: round(r.median(), 3) for s, r in stats.stage_ms.items() if r.count}
    lat = stats.latency_ms
    latency = {"p50": round(lat.percentile(50), 2), "p95": round(lat.percentile(95), 2)}
    return stages, latency


def _release(camera: PacedFrames | None, writer: VideoWriter | None) -> None:
    """Stop the paced camera and remove the timing output (the output even when the camera fails)."""
    try:
        if camera is not None:
            camera.close()
    finally:
        if writer is not None:
            writer.close(keep=False)


def _camera_frames(camera: PacedFrames) -> Iterator[np.ndarray]:
    """The paced camera's frames, the camera started when the first is asked for (after the
    warm-up frames, which go through unpaced)."""
    camera.start()
    yield from frames_until_end(camera)


def run_benchmark(cfg: BenchConfig, segmenter: Segmenter | None = None) -> BenchResult:
    """Warm up, then time ``cfg``; returns the end-to-end figures."""
    own = segmenter is None
    seg = segmenter or Segmenter(cfg.model, provider=cfg.provider, threads=cfg.threads)
    verifier = open_verifier(cfg.verifier, cfg.provider, cfg.threads)
    limit = cfg.warmup + cfg.frames if cfg.frames else 0
    source = _Source(cfg.source, limit)
    try:
        frames: Iterator[np.ndarray] = iter(source)
        warm = list(itertools.islice(frames, cfg.warmup))
        if cfg.predecode or cfg.camera_fps:
            frames = iter(list(frames))
        settings = ComposeSettings(mode=cfg.mode)
        stream = FaceStream(
            segmenter=seg, settings=settings, smoothing=cfg.smoothing, fps=float(source.fps), verifier=verifier
        )
        pipeline = Pipeline(stream, queue_size=1 if cfg.camera_fps else 4, measure_flicker=True)
        with tempfile.TemporaryDirectory(prefix="facecam-bench-") as tmp:
            writer = (
                VideoWriter(Path(tmp) / "bench.mp4", source.fps, source.width, source.height) if cfg.encode else None
            )

            def sink(frame: Frame) -> None:
                if writer is not None:
                    writer.write(frame.output)

            camera = PacedFrames(list(frames), cfg.camera_fps) if cfg.camera_fps else None
            try:
                # warmed up on the threads that are then timed (see Pipeline.run)
                timed = _camera_frames(camera) if camera is not None else frames
                stats = pipeline.run(itertools.chain(warm, timed), sink, warmup=len(warm))
            except BaseException as exc:  # the run's error stays the error; a failed release is its note
                close_during_error(
                    exc, "releasing the paced camera and the timing output", lambda: _release(camera, writer)
                )
                raise
            _release(camera, writer)
        stages, latency = _summarise(stats)
        if not cfg.encode:
            stages.pop("encode", None)  # the sink did nothing; no encode stage ran
        return BenchResult(
            fps=round(stats.fps, 2),
            frames=stats.frames,
            stages_ms=stages,
            latency_ms=latency,
            dropped=camera.dropped if camera is not None else 0,
            flicker=None if stats.flicker is None else round(stats.flicker, 5),
            provider=seg.provider,
            model=seg.files_said(),
            mode=cfg.mode,
            source=cfg.source,
            size=[source.width, source.height],
            finder_size=list(finder_size((source.height, source.width), stream.finder.crop_size, stream.finder.zoom)),
            faces_per_frame=round(stats.faces_per_frame, 3),
            cpu_ms_per_frame=round(1000 * (stats.cpu_seconds - stats.measuring_cpu_s) / max(stats.frames, 1), 2),
            config={**asdict(cfg), "verifier": None if verifier is None else str(verifier.path)},
        )
    finally:
        source.close()
        if own:
            seg.close()
        if verifier is not None:
            verifier.close()


def format_table(results: list[BenchResult]) -> str:
    """Runs side by side: one column per run, one row per figure."""
    names = [f"{r.model} / {r.provider.replace('ExecutionProvider', '')} / {r.mode}" for r in results]
    rows = [
        ("end-to-end FPS", [f"{r.fps:.1f}" for r in results]),
        ("CPU ms per frame", [f"{r.cpu_ms_per_frame:.1f}" for r in results]),
        ("frames", [str(r.frames) for r in results]),
    ]
    for stage in STAGE_LABELS.values():
        rows.append(
            (f"{stage} ms (median)", [f"{r.stages_ms[stage]:.2f}" if stage in r.stages_ms else "-" for r in results])
        )
    rows += [
        ("latency p50 ms", [f"{r.latency_ms['p50']:.1f}" for r in results]),
        ("latency p95 ms", [f"{r.latency_ms['p95']:.1f}" for r in results]),
        ("frames dropped", [str(r.dropped) for r in results]),
        ("mask flicker", ["-" if r.flicker is None else f"{r.flicker:.4f}" for r in results]),
        ("faces per frame", [f"{r.faces_per_frame:.2f}" for r in results]),
        (
            "frame / full-frame pass",
            [f"{r.size[0]}x{r.size[1]} / {r.finder_size[1]}x{r.finder_size[0]}" for r in results],
        ),
    ]
    width0 = max(len(label) for label, _ in rows)
    widths = [max(len(n), *(len(v[i]) for _, v in rows)) for i, n in enumerate(names)]
    lines = [" " * width0 + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    lines += [
        label.ljust(width0) + "  " + "  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))
        for label, values in rows
    ]
    return "\n".join(lines)


def save_chart(results: list[BenchResult], path: Path) -> None:
    """A PNG bar chart of the median per-stage times of each run (needs matplotlib)."""
    from facecam.errors import FacecamError

    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError as exc:
        raise FacecamError("a chart needs matplotlib: pip install matplotlib") from exc
    stages = list(STAGE_LABELS.values())
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(results)
    for i, r in enumerate(results):
        xs = [j + i * width for j in range(len(stages))]
        ax.bar(xs, [r.stages_ms.get(s, 0) for s in stages], width, label=f"{r.model} {r.provider[:4]} {r.fps:.0f} FPS")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(stages))], stages)
    ax.set_ylabel("median ms per frame")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

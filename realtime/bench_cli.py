"""``facecam-bench``: end-to-end FPS, per-stage time, latency, drops and flicker of the pipeline.

facecam-bench --source ../shared/data/videos/d3.mp4 --mode blur
facecam-bench --source generated:1280x720 --compare facecam_face @cpu other.onnx@cpu
facecam-bench --source d3.mp4 --predecode --no-encode --anchor-python ~/.cache/mp-anchor/bin/python
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from facecam.cli_args import OneLineErrorParser, non_negative_int, positive_float
from facecam.errors import FacecamError, cli_entry
from facecam.realtime.compose import MODES
from facecam.realtime.providers import PROVIDER_CHOICES, pipeline_threads
from facecam.realtime.segmenter import DEFAULT_MODEL, WEIGHTS_DIR

PACKAGE_ROOT = WEIGHTS_DIR.parent
DEFAULT_SOURCE = PACKAGE_ROOT / "samples" / "astronaut.mp4"
#: MediaPipe's selfie segmentation + blur (the job of ../shared/anchors/mediapipe_anchor.py) with its CPU time
ANCHOR_SCRIPT = PACKAGE_ROOT / "scripts" / "mediapipe_cpu.py"


def parser() -> OneLineErrorParser:
    p = OneLineErrorParser(
        prog="facecam-bench", description="Benchmark the whole facecam pipeline, not the model alone."
    )
    p.add_argument("--source", default=str(DEFAULT_SOURCE), help="a video file, or generated:WIDTHxHEIGHT")
    p.add_argument("--mode", default="blur", choices=MODES)
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name in weights/ or .onnx path")
    p.add_argument("--provider", default="auto", choices=PROVIDER_CHOICES)
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="MODEL[@PROVIDER]",
        help="run each of these (a model, model@provider, or @provider) and print them side by side",
    )
    p.add_argument(
        "--threads",
        type=non_negative_int,
        default=0,
        help="inference threads (0 = as facecam chooses: 1 with --camera-fps, else half the cores; "
        "onnxruntime's default in anonymize)",
    )
    p.add_argument(
        "--verifier", default="facecam_verifier", metavar="NAME|PATH|none", help="the face verifier (none: no verifier)"
    )
    p.add_argument("--frames", type=non_negative_int, default=0, help="timed frames (0 = all after warm-up)")
    p.add_argument("--warmup", type=non_negative_int, default=30, help="frames run before timing starts")
    p.add_argument(
        "--predecode",
        action="store_true",
        help="decode the clip into memory first, so decoding is not timed (as MediaPipe's anchor does)",
    )
    p.add_argument("--no-encode", action="store_true", help="do not encode the output (as MediaPipe's anchor does)")
    p.add_argument(
        "--camera-fps",
        type=positive_float,
        default=None,
        help="deliver frames like a live camera at this rate, newest frame only; counts drops",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON (fps at the top level)")
    p.add_argument("--chart", type=Path, metavar="PNG", help="also draw a bar chart of the per-stage times")
    p.add_argument(
        "--anchor-python",
        metavar="PYTHON",
        help="a python with mediapipe==0.10.14: run ../shared/anchors/mediapipe_anchor.py on the same "
        "clip in the same run and print the FPS ratio",
    )
    return p


def _variants(args) -> list[tuple[str, str]]:
    if not args.compare:
        return [(args.model, args.provider)]
    out = []
    for item in args.compare:
        model, _, provider = item.partition("@")
        provider = provider or args.provider
        if provider not in PROVIDER_CHOICES:
            raise FacecamError(
                f"--compare {item!r}: unknown provider {provider!r}; valid: {', '.join(PROVIDER_CHOICES)}"
            )
        out.append((model or args.model, provider))
    return out


def run_anchor(python: str, source: str, script: Path = ANCHOR_SCRIPT) -> dict:
    """MediaPipe selfie segmentation + blur + compositing on ``source``: FPS and CPU ms per frame."""
    if not script.is_file():
        raise FacecamError(f"anchor script {script} not found")
    try:
        done = subprocess.run([python, str(script), source], capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FacecamError(f"could not run the MediaPipe anchor with {python}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FacecamError(f"MediaPipe anchor failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@cli_entry
def main(argv: list[str] | None = None) -> int:
    from facecam.realtime.benchmark import BenchConfig, format_table, run_benchmark, save_chart

    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    for path in (args.json, args.chart):
        if path is not None and not path.parent.is_dir():
            raise FacecamError(f"output folder {path.parent} does not exist")
    base = BenchConfig(
        source=args.source,
        mode=args.mode,
        threads=pipeline_threads(args.threads, args.mode, camera=bool(args.camera_fps)),
        verifier=args.verifier,
        frames=args.frames,
        warmup=args.warmup,
        predecode=args.predecode,
        encode=not args.no_encode,
        camera_fps=args.camera_fps or 0.0,
    )
    results = []
    for model, provider in _variants(args):
        results.append(run_benchmark(replace(base, model=model, provider=provider)))
        print(
            f"facecam-bench: {results[-1].model} on {results[-1].provider}: {results[-1].fps:.1f} FPS", file=sys.stderr
        )
    print(format_table(results))
    report: dict = (
        {"fps": results[0].fps, **results[0].to_json()}
        if len(results) == 1
        else {"fps": results[0].fps, "runs": [r.to_json() for r in results]}
    )
    if args.anchor_python:
        if args.mode != "blur" or not args.predecode or not args.no_encode:
            print(
                "facecam-bench: note: MediaPipe's anchor times blur with decoding and encoding excluded; "
                "use --mode blur --predecode --no-encode for the same job",
                file=sys.stderr,
            )
        anchor = run_anchor(args.anchor_python, args.source)
        ratio = results[0].fps / anchor["selfie_blur_fps"]
        cpu_ratio = results[0].cpu_ms_per_frame / anchor["cpu_ms_per_frame"]
        print(
            f"MediaPipe selfie segmentation + blur: {anchor['selfie_blur_fps']:.1f} FPS, "
            f"{anchor['cpu_ms_per_frame']:.1f} CPU ms per frame; facecam {results[0].fps:.1f} FPS = {ratio:.2f}x, "
            f"{results[0].cpu_ms_per_frame:.1f} CPU ms per frame = {cpu_ratio:.2f} of MediaPipe's"
        )
        report["anchor"] = anchor
        report["ratio_vs_mediapipe"] = round(ratio, 3)
        report["cpu_ratio_vs_mediapipe"] = round(cpu_ratio, 3)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if args.chart:
        save_chart(results, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())

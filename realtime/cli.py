"""``facecam``: segment faces from a camera, a video file or a folder of photos.

facecam (--camera INDEX|PATH|URL | --video PATH | --images DIR) [--out PATH] [--mode MODE] ...
facecam --videos DIR|GLOB --out DIR [--jobs N | --ray ADDRESS] [--suffix .mp4] [--report PATH] ...
facecam --video PARTIAL --remux-only --out FIXED.mp4
"""

from __future__ import annotations

import sys
from pathlib import Path

from facecam.cli_args import OneLineErrorParser, non_negative_int, unit_float
from facecam.errors import EXIT_INTERRUPTED, FacecamError, cli_entry, stop_on_sigterm
from facecam.realtime.batch_cli import add_batch_options, batch_spec, check_batch_options
from facecam.realtime.camera_options import add_camera_options, camera_location, camera_source, check_camera_options
from facecam.realtime.compose import ANONYMIZE_STYLES, MODES, ComposeSettings, parse_background
from facecam.realtime.providers import PROVIDER_CHOICES, pipeline_threads
from facecam.realtime.segmenter import DEFAULT_MODEL, Segmenter
from facecam.realtime.verifier import DEFAULT_VERIFIER, open_verifier
from facecam.realtime.video_parts import default_workers


def parser() -> OneLineErrorParser:
    p = OneLineErrorParser(
        prog="facecam",
        description="Real-time face segmentation: draw the face mask, blur or replace the background, "
        "or anonymise the faces.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--camera",
        type=camera_location,
        metavar="INDEX|PATH|URL",
        help="live camera: an index (0 = the first), a device path (/dev/video2) or a stream URL (rtsp://, http://)",
    )
    src.add_argument("--video", type=Path, metavar="PATH", help="video file; every frame is processed, audio kept")
    src.add_argument("--images", type=Path, metavar="DIR", help="folder of photos; one output per photo")
    p.add_argument(
        "--out", type=Path, metavar="PATH", help="output video (.mp4/.mov/.mkv/.avi), a folder with --images/--videos"
    )
    p.add_argument("--mode", default="overlay", choices=MODES, help="what to draw")
    p.add_argument(
        "--background",
        default="green",
        metavar="IMAGE|COLOR",
        help="replace mode: an image path, a colour name (green, blue, black, white, gray) or #RRGGBB",
    )
    p.add_argument("--anonymize-style", default="pixelate", choices=ANONYMIZE_STYLES, help="anonymize mode")
    p.add_argument("--blur-sigma", type=float, default=8.0, help="blur mode: background blur strength in pixels")
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME|PATH",
        help="a model name in the package's weights/ folder, or a path to an exported .onnx",
    )
    p.add_argument(
        "--provider",
        default="auto",
        choices=PROVIDER_CHOICES,
        help="onnxruntime provider; auto = TensorRT, CUDA, then CPU, the first that starts",
    )
    p.add_argument(
        "--threads",
        type=non_negative_int,
        default=0,
        help="inference threads (0 = as facecam chooses: 1 for a camera, where the CPU a frame costs "
        "counts; for a video half the cores, onnxruntime's default in anonymize and for photos)",
    )
    p.add_argument(
        "--verifier",
        default=DEFAULT_VERIFIER,
        metavar="NAME|PATH|none",
        help="the face verifier that keeps the full-frame pass's proposals that are faces, with its grey twin "
        "NAME_grey.onnx when one is beside it (none: keep every one)",
    )
    p.add_argument(
        "--anonymize-margin",
        type=float,
        default=0.15,
        help="anonymize mode: grow each face's region this share of its size beyond its outline (0..2)",
    )
    p.add_argument(
        "--smoothing",
        type=unit_float,
        default=0.6,
        help="temporal smoothing 0..1 (0 = off); follows motion, resets on scene cuts",
    )
    p.add_argument(
        "--no-display", action="store_true", help="no window (one is shown for --camera, and for --video without --out)"
    )
    p.add_argument("--max-frames", type=non_negative_int, default=0, help="stop after N frames or photos (0 = all)")
    p.add_argument("--stats", action="store_true", help="print stage times and the full-size mask flicker at the end")
    add_camera_options(p)
    add_batch_options(p, src)
    p.add_argument(
        "--remux-only",
        action="store_true",
        help="with --video PARTIAL --out FIXED.mp4: no processing, only copy the frames of a fragmented file "
        "(what an interrupted run leaves) into an ordinary MP4/MOV that every player shows with its real duration",
    )
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    from facecam.realtime.runners import JobOptions, run_camera, run_images, run_video

    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    stop_on_sigterm()
    if args.remux_only:
        return remux_only(args.video, args.out)
    check_camera_options(args)
    check_batch_options(args)
    if args.images is not None and args.out is None:
        raise FacecamError("--images needs --out DIR for the results")
    if not 0 < args.blur_sigma <= 100:
        raise FacecamError(f"--blur-sigma must be within 0..100 pixels (exclusive of 0), got {args.blur_sigma}")
    if args.videos is not None:
        from facecam.realtime.batch_cli import run_batch

        return run_batch(args)
    display = not args.no_display and args.images is None and (args.camera is not None or args.out is None)
    if args.video is not None and args.out is None and not display:
        raise FacecamError("--no-display without --out leaves nothing to show or write; add --out FILE")
    background = parse_background(args.background)  # parsed always: the window can switch to replace
    settings = ComposeSettings(
        mode=args.mode,
        background=background,
        blur_sigma=args.blur_sigma,
        anonymize_style=args.anonymize_style,
        anonymize_margin=args.anonymize_margin,
    )
    opts = JobOptions(
        settings=settings,
        smoothing=args.smoothing,
        max_frames=args.max_frames,
        display=display,
        measure_flicker=args.stats,
        virtual_camera=args.virtual_camera,
        mirror=args.mirror,
    )
    parts = video_parts_wanted(args, display)
    # photos go one at a time, not through the pipeline: onnxruntime's own choice is best there
    threads = (
        args.threads if args.images is not None else pipeline_threads(args.threads, args.mode, args.camera is not None)
    )
    opts.verifier = open_verifier(args.verifier, args.provider, threads)
    with Segmenter(args.model, provider=args.provider, threads=threads) as segmenter:
        card = segmenter.card
        print(
            f"facecam: model {segmenter.path.name} ({card.model_name or 'unnamed'}, {card.precision}"
            + "".join(f"; {said}" for said in segmenter.companions())
            + ") on "
            f"{segmenter.provider}" + (f" ({segmenter.fallback})" if segmenter.fallback else ""),
            file=sys.stderr,
        )
        if args.video is not None:
            opts.parts = parts or default_workers(args.mode, segmenter.provider)
            if opts.parts > 1:  # what each worker process rebuilds the job from (threads: see run_parts)
                opts.spec = batch_spec(args, args.threads or 0)
            stats = run_video(segmenter, args.video, args.out, opts)
        elif args.camera is not None:
            stats = run_camera(segmenter, camera_source(args), args.out, opts)
        else:
            stats = run_images(segmenter, args.images, args.out, opts)
    print(
        f"facecam: {stats.summary() if args.stats else f'{stats.frames} frames, {stats.fps:.1f} FPS'}"
        + (f" -> {args.out}" if args.out else ""),
        file=sys.stderr,
    )
    if stats.stuck:
        print(
            f"facecam: warning: {', '.join(stats.stuck)} did not stop when the run ended "
            "(a camera or decoder that hangs?); exiting without it",
            file=sys.stderr,
        )
    if stats.interrupted:
        print("facecam: interrupted; the output holds every frame processed so far", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def video_parts_wanted(args, display: bool) -> int:
    """How many worker processes run parts of a ``--video`` at once (see realtime/video_parts.py):
    ``--jobs``; 1 where parts cannot run (no output file, a window, ``--stats``); 0 for the
    default, which depends on the provider (video_parts.default_workers)."""
    if args.video is None:
        return 1
    if args.jobs is not None and args.jobs > 1:
        if args.out is None or display:
            raise FacecamError("--jobs with --video runs parts of the file at once: it needs --out FILE, no window")
        if args.stats:
            raise FacecamError("--stats times the stages of one run; leave out --jobs (or give --jobs 1)")
        return args.jobs
    if args.jobs is None and args.out is not None and not display and not args.stats:
        return 0
    return 1


def remux_only(source: Path | None, out: Path | None) -> int:
    """``--remux-only``: no model is loaded, nothing is processed."""
    from facecam.realtime.remux import remux_file

    if source is None or out is None:
        raise FacecamError("--remux-only needs --video PARTIAL and --out FIXED.mp4")
    copied = remux_file(source, out)
    print(f"facecam: {source} remuxed ({copied} packets copied, none re-encoded) -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

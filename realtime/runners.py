"""The three jobs of ``facecam``: a video file, a live camera, a folder of photos.

Each takes an open Segmenter and the compose settings, owns its inputs and outputs, and
releases them in ``finally`` (or a context manager): Ctrl-C leaves a playable output.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facecam.api import FaceStream
from facecam.errors import CameraError, FacecamError, one_line
from facecam.realtime.batch import BatchSpec
from facecam.realtime.camera import CameraReader, CameraSource, frames_until_end
from facecam.realtime.compose import MODES, ComposeSettings
from facecam.realtime.pipeline import Frame, Pipeline, RunStats
from facecam.realtime.segmenter import Segmenter
from facecam.realtime.vcam import VirtualCameraSink
from facecam.realtime.verifier import Verifier
from facecam.realtime.video_io import VideoWriter, check_output_path
from facecam.realtime.video_parts import plan_parts, run_parts
from facecam.realtime.video_reader import VideoReader, estimated_frames

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: photos OpenCV cannot decode (a phone's HEIC, a camera's raw files): named, never passed over in
#: silence, as an iPhone's folder of HEIC photos would otherwise be
FOREIGN_PHOTO_SUFFIXES = (".heic", ".heif", ".avif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2")
WINDOW = "facecam"
#: keys in the camera window: 1-5 pick a mode, m cycles, q or Esc quits
MODE_KEYS = {ord(str(i + 1)): mode for i, mode in enumerate(MODES)}
QUIT_KEYS = {ord("q"), 27}


@dataclass
class JobOptions:
    """What every job needs besides its source and output."""

    settings: ComposeSettings
    smoothing: float = 0.6
    max_frames: int = 0  # 0 = no limit
    display: bool = False
    measure_flicker: bool = False
    verifier: Verifier | None = None  # keeps the full-frame pass's proposals that are faces
    virtual_camera: str | None = None  # camera: a virtual camera's name ("" = the first found), None = none
    mirror: bool = False  # camera: flip the preview window only
    # video: called with each frame's index once it is written (a batch's progress; raising
    # KeyboardInterrupt in it stops the run as Ctrl-C does, keeping the frames written)
    on_frame: Callable[[int], None] | None = None
    # video with an output file and no window: this many worker processes run parts of it at
    # once (see realtime/video_parts.py), each rebuilding the job from ``spec``
    parts: int = 1
    spec: BatchSpec | None = None

    def stream(self, segmenter: Segmenter, fps: float = 30.0) -> FaceStream:
        """The public per-stream object with these options, around the job's models."""
        return FaceStream(
            segmenter=segmenter, settings=self.settings, smoothing=self.smoothing, fps=fps, verifier=self.verifier
        )

    def pipeline(self, segmenter: Segmenter, queue_size: int, fps: float) -> Pipeline:
        """A pipeline with these options and a fresh stream of ``fps`` frames a second."""
        return Pipeline(self.stream(segmenter, fps), queue_size, measure_flicker=self.measure_flicker)


def _limited(frames, max_frames: int):
    return itertools.islice(frames, max_frames) if max_frames else frames


def open_window() -> None:
    """Create the preview window, or fail clearly where OpenCV or the machine has no screen."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise FacecamError("no screen to show a window on (DISPLAY is not set); use --no-display with --out FILE")
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error as exc:
        raise FacecamError(
            "this OpenCV build cannot open windows (opencv-python-headless?); "
            "use --no-display with --out FILE, or install opencv-python"
        ) from exc


def _show(frame: Frame, settings: ComposeSettings, fps: float, mirror: bool = False) -> bool:
    """Show one result with an FPS read-out; handle keys. Returns False to quit.

    ``mirror`` flips the window's picture only (people expect to see themselves as in a mirror;
    the recording and the virtual camera keep the camera's view, as the other side sees it)."""
    view = cv2.flip(frame.output, 1) if mirror else frame.output.copy()
    cv2.putText(
        view,
        f"{fps:5.1f} FPS  {settings.mode}  [1-5/m: mode, q: quit]",
        (10, 24),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        (255, 255, 255),
        2,
        cv2.LINE_AA,
    )
    cv2.imshow(WINDOW, view)
    key = cv2.waitKey(1) & 0xFF
    if key in QUIT_KEYS:
        return False
    if key == ord("m"):
        settings.mode = MODES[(MODES.index(settings.mode) + 1) % len(MODES)]
    elif key in MODE_KEYS:
        settings.mode = MODE_KEYS[key]
    return True


class _FpsMeter:
    def __init__(self) -> None:
        self.last, self.value = time.perf_counter(), 0.0

    def tick(self) -> float:
        now = time.perf_counter()
        self.value = (
            0.9 * self.value + 0.1 / max(now - self.last, 1e-6) if self.value else 1 / max(now - self.last, 1e-6)
        )
        self.last = now
        return self.value


def run_video(segmenter: Segmenter, source: Path, out: Path | None, opts: JobOptions) -> RunStats:
    """Every frame of ``source`` through the pipeline, in order, to ``out`` (with its audio) and/or a window."""
    with VideoReader(source) as reader:
        if out is not None:
            check_output_path(out, (source,))
        # the output's metadata says so too, without the source's path (a file that is shared)
        rate_note = f"the source states no frame rate; {reader.fps} fps assumed" if reader.fps_assumed else None
        if rate_note:
            print(f"facecam: {source} states no frame rate; {reader.fps} fps assumed", file=sys.stderr)
        if reader.hdr and out is not None:
            print(
                f"facecam: {source} is HDR ({reader.hdr}); it is written as SDR without tone mapping, so its "
                "colours will look flat (convert it to SDR first for true colours)",
                file=sys.stderr,
            )
        writer = (
            VideoWriter(
                out,
                reader.fps,
                reader.width,
                reader.height,
                audio_from=source,
                audio_offset=reader.start_seconds,
                time_base=reader.time_base,
                comment=rate_note,
                sample_aspect=reader.sample_aspect,
            )
            if out
            else None
        )
        fps = _FpsMeter()
        if opts.display:
            open_window()

        def sink(frame: Frame) -> bool:
            if writer is not None:
                # The source's own frame times: a variable frame rate stays in sync with the audio.
                writer.write(frame.output, timestamp=reader.take_frame_time(frame.index))
            if opts.on_frame is not None:
                opts.on_frame(frame.index)
            return _show(frame, opts.settings, fps.tick()) if opts.display else True

        def write_part(index: int, seconds, image: np.ndarray) -> None:
            writer.write(image, timestamp=seconds)
            if opts.on_frame is not None:
                opts.on_frame(index)

        plan = _parts_plan(reader, source, opts) if writer is not None and not opts.display else None
        if plan is not None:
            print(
                f"facecam: {plan.workers} worker processes at once, on parts of {plan.part_frames} frames",
                file=sys.stderr,
            )
        try:
            if plan is not None:
                stats, reader.skipped = run_parts(opts.spec, str(source), plan, write_part, opts.max_frames)
            else:
                pipeline = opts.pipeline(segmenter, queue_size=4, fps=float(reader.fps))
                stats = pipeline.run(_limited(reader.frames(), opts.max_frames), sink)
        except FacecamError as exc:
            # A fault mid-stream (inference, disk): keep what was done, playable, and say so.
            raise FacecamError(f"{exc}{_close_quietly(writer)}") from exc
        except BaseException:
            _close_quietly(writer)
            raise
        finally:
            if opts.display:
                cv2.destroyAllWindows()
        if writer is not None:
            if stats.interrupted:
                writer.mark_incomplete()
            writer.close(keep=True)
            if writer.kept_path is not None and writer.kept_path != out:
                print(f"facecam: {out} already existed; the partial result is in {writer.kept_path}", file=sys.stderr)
        if reader.skipped:
            print(f"facecam: {reader.skipped} corrupt frame(s) in {source} were skipped", file=sys.stderr)
        return stats


def _parts_plan(reader: VideoReader, source: Path, opts: JobOptions):
    """How ``opts.parts`` worker processes cut the file (see realtime/video_parts.py); None: one process."""
    if opts.parts < 2 or opts.spec is None:
        return None
    stated = estimated_frames(str(source))
    stated = min(stated, opts.max_frames) if opts.max_frames and stated else stated
    return plan_parts((reader.height, reader.width), float(reader.fps), stated, opts.parts)


def _close_quietly(writer: VideoWriter | None) -> str:
    """Finish ``writer`` early, keeping its frames; returns a note for an error message (never raises)."""
    if writer is None or writer.closed:
        return ""
    writer.mark_incomplete()
    try:
        writer.close(keep=True)
    except Exception as exc:  # the run's own error comes first; this one is its note
        return f"; finishing {writer.path} failed too: {one_line(exc)}"
    if writer.kept_path is not None and writer.kept_path.exists():
        return f"; what was written before is kept, playable, in {writer.kept_path}"
    return ""


def run_camera(segmenter: Segmenter, source: CameraSource | int | str, out: Path | None, opts: JobOptions) -> RunStats:
    """Live camera, newest frame only, to a window, a recording (timed by capture) and/or a
    virtual camera (at the camera's constant rate, see realtime/vcam.py).

    A camera that stops delivering is re-opened a few times; if it stays gone, the run ends
    with a CameraError and the recording so far is kept.
    """
    if out is not None:
        check_output_path(out)
    if opts.display:
        open_window()
    camera = CameraReader(source).start()
    writer = vcam = None
    quit_by_user = False
    try:
        print(f"facecam: {camera.delivery()}", file=sys.stderr)
        if opts.virtual_camera is not None:
            vcam = VirtualCameraSink(camera.frame_size, camera.fps, opts.virtual_camera)
            print(f"facecam: sending to virtual camera {vcam.device} at a constant {vcam.fps:g} fps", file=sys.stderr)
        pipeline = opts.pipeline(segmenter, queue_size=1, fps=camera.fps or 30.0)  # a camera: hold latency down
        fps = _FpsMeter()
        start = time.perf_counter()

        def sink(frame: Frame) -> bool:
            nonlocal writer, quit_by_user
            if vcam is not None:
                vcam.submit(frame.output)  # first: the call should not wait for the recording
            if out is not None:
                if writer is None:
                    h, w = frame.output.shape[:2]
                    writer = VideoWriter(out, camera.fps, w, h)
                writer.write(frame.output, timestamp=frame.captured - start)
            keep_going = _show(frame, opts.settings, fps.tick(), opts.mirror) if opts.display else True
            quit_by_user = not keep_going
            return keep_going

        stats = pipeline.run(_limited(frames_until_end(camera), opts.max_frames), sink)
    except FacecamError as exc:
        # A fault mid-stream (inference, disk): keep the recording so far as written, and say so.
        raise FacecamError(f"{exc}{_close_quietly(writer)}") from exc
    except BaseException:
        _close_quietly(writer)
        raise
    finally:
        # the recording first (it is the user's), and every release even if one before it fails
        _release_in_order(
            (lambda: writer.close(keep=True)) if writer is not None and not writer.closed else None,
            camera.close,
            vcam.close if vcam is not None else None,
            cv2.destroyAllWindows if opts.display else None,
        )
    if camera.dropped:
        print(f"facecam: {camera.dropped} camera frame(s) dropped to keep latency low", file=sys.stderr)
    if vcam is not None:
        print(f"facecam: virtual camera: {vcam.emitted} frames sent, {vcam.repeated} of them repeats", file=sys.stderr)
    if (camera.lost or camera.stalled) and not (quit_by_user or stats.interrupted):
        kept = f"; the recording so far ({writer.frames_written} frames) is in {out}" if writer else ""
        raise CameraError(f"camera {camera.source} stopped delivering frames (re-opened {camera.retries} times){kept}")
    return stats


def _release_in_order(*steps) -> None:
    """Run every step (None: skip it), even after one fails; then raise the first failure."""
    first: BaseException | None = None
    for step in steps:
        if step is None:
            continue
        try:
            step()
        except BaseException as exc:  # the others must still run; the first is raised below
            first = first or exc
    if first is not None:
        raise first


def list_photos(folder: Path) -> tuple[list[Path], list[Path]]:
    """The photos in ``folder`` (by suffix, sorted), and those in formats it cannot read
    (FOREIGN_PHOTO_SUFFIXES) that have no readable twin of the same name; a missing folder, or
    one without a photo it can read, is a FacecamError (that names the others)."""
    if not folder.is_dir():
        raise FacecamError(f"photo folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    photos = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    # a camera's raw file beside its own JPEG (IMG_1.CR2, IMG_1.JPG) is that photo, done once
    stems = {p.stem.lower() for p in photos}
    foreign = [p for p in files if p.suffix.lower() in FOREIGN_PHOTO_SUFFIXES and p.stem.lower() not in stems]
    if not photos:
        also = f"; {_foreign_note(foreign)}" if foreign else ""
        raise FacecamError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {folder}{also}")
    return photos, foreign


def _foreign_note(foreign: list[Path]) -> str:
    names = ", ".join(p.name for p in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
    return f"{len(foreign)} photo(s) in formats facecam cannot read ({names}): convert them to JPEG or PNG"


def output_name(photo: Path, mode: str) -> str:
    """Same stem; a PNG for masks, else the photo's suffix (lower case)."""
    return photo.stem + (".png" if mode == "mask" else photo.suffix.lower())


def run_images(segmenter: Segmenter, folder: Path, out: Path, opts: JobOptions) -> RunStats:
    """One output per photo in ``out``; unreadable photos are reported by name at the end."""
    photos, foreign = list_photos(folder)
    if out.resolve() == folder.resolve():
        raise FacecamError(f"output folder {out} is the photo folder; outputs would overwrite the photos")
    if out.exists() and not out.is_dir():
        raise FacecamError(f"output {out} exists and is not a folder")
    if not out.parent.is_dir():
        raise FacecamError(f"output folder's parent {out.parent} does not exist")
    targets: dict[str, Path] = {}
    for photo in photos:
        name = output_name(photo, opts.settings.mode)
        if name in targets:
            raise FacecamError(f"{targets[name].name} and {photo.name} would both be written as {name}; rename one")
        targets[name] = photo
    out.mkdir(exist_ok=True)
    if not os.access(out, os.W_OK):
        raise FacecamError(f"output folder {out} is not writable")
    stats, unreadable = RunStats(), []
    stream = opts.stream(segmenter)
    start = time.perf_counter()
    for photo in _limited(photos, opts.max_frames):
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            unreadable.append(photo.name)
            continue
        t0 = time.perf_counter()
        found = stream.process_photo(image)  # its own full-frame pass, no memory of the last photo
        result = found.image
        stats.faces += len(found.faces)
        stats.stage_ms["compose"].append((time.perf_counter() - t0) * 1000)
        if opts.settings.mode == "mask":
            result = np.where(result[..., 0] >= 128, 255, 0).astype(np.uint8)  # a 0/255 PNG
        target = out / output_name(photo, opts.settings.mode)
        if not cv2.imwrite(str(target), result):
            raise FacecamError(f"cannot write {target}")
        stats.frames += 1
    stats.seconds = time.perf_counter() - start
    problems = [_foreign_note(foreign)] if foreign else []
    if unreadable:
        problems.append(
            f"{len(unreadable)} photo(s) could not be read: {', '.join(unreadable[:10])}"
            f"{' ...' if len(unreadable) > 10 else ''}"
        )
    if problems:
        raise FacecamError(f"{'; '.join(problems)} ({stats.frames} written to {out})")
    return stats

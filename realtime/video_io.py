"""Video files in and out with PyAV: frames as ``(H, W, 3) uint8 BGR``, audio kept.

The writer encodes into a hidden temporary file beside the target and renames it into place
only when it is finished (or cleanly cut short by Ctrl-C), so a half-written file never takes
the output's name and an existing file is replaced only by a complete one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from facecam.errors import FacecamError

#: output container by file suffix
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
#: audio codecs an MP4/MOV can carry as they are; others are re-encoded to AAC
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


class VideoReader:
    """Decode a video file frame by frame.

    ``fps`` (Fraction), ``width``, ``height``, ``frame_count`` (0 if the file does not say)
    and ``has_audio`` describe it. A missing file, a non-video or an undecodable one is a
    FacecamError. Frames that fail to decode mid-stream are skipped and counted in
    ``skipped``, so one corrupt frame does not end a long file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FacecamError(f"video {self.path} does not exist")
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise FacecamError(f"{self.path} is not a readable video ({type(exc).__name__})") from exc
        if not self._container.streams.video:
            self._container.close()
            raise FacecamError(f"{self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        ctx = self._stream.codec_context
        if not ctx.width or not ctx.height:
            self._container.close()
            raise FacecamError(f"{self.path}: video stream has no frame size; is the file complete?")
        self.width, self.height = ctx.width, ctx.height
        rate = self._stream.average_rate or self._stream.guessed_rate or Fraction(30)
        self.fps = Fraction(rate)
        self.frame_count = int(self._stream.frames or 0)
        self.has_audio = bool(self._container.streams.audio)
        self.skipped = 0

    def frames(self) -> Iterator[np.ndarray]:
        """Every decodable frame in order, as ``(H, W, 3) uint8 BGR``."""
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.skipped += 1
                    continue
                for frame in decoded:
                    yield frame.to_ndarray(format="bgr24")
        except av.error.FFmpegError as exc:
            raise FacecamError(f"{self.path}: decoding stopped ({exc})") from exc

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_output_path(path: Path, inputs: tuple[Path, ...] = ()) -> None:
    """Fail before any work when ``path`` cannot be written or would overwrite an input."""
    path = Path(path)
    if path.suffix.lower() not in CONTAINERS:
        raise FacecamError(f"output {path}: unsupported suffix; use one of {', '.join(CONTAINERS)}")
    for source in inputs:
        if path.resolve() == Path(source).resolve() or (path.exists() and os.path.samefile(path, source)):
            raise FacecamError(f"--out {path} is the input file; choose another output path")
    if path.is_dir():
        raise FacecamError(f"--out {path} is a folder; give a file name such as {path / 'out.mp4'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FacecamError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise FacecamError(f"output folder {parent} is not writable")


class VideoWriter:
    """Encode frames to ``path`` (H.264) at ``fps``, copying the audio of ``audio_from`` if given.

    Use as a context manager or call :meth:`close`. ``close(keep=True)`` finishes the file
    (flushes the encoder, adds the audio up to the last written frame) and renames it into
    place; ``close(keep=False)`` removes it. With no frame written nothing is created.
    """

    def __init__(
        self, path: str | Path, fps: Fraction, width: int, height: int, audio_from: Path | None = None
    ) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.frames_written = 0
        self._last_pts = -1
        self._closed = False
        fmt = CONTAINERS.get(self.path.suffix.lower())
        if fmt is None:
            raise FacecamError(f"output {self.path}: unsupported suffix; use one of {', '.join(CONTAINERS)}")
        try:
            self._out = av.open(str(self.tmp), "w", format=fmt)
        except (av.error.FFmpegError, OSError) as exc:
            raise FacecamError(f"cannot write {self.path}: {exc}") from exc
        self._video = self._out.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height = width, height
        # 4:2:0 needs even sides; odd-sized input keeps its exact size with 4:4:4.
        self._video.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self._video.time_base = Fraction(1, 1) / self.fps
        self._video.options = {"crf": "20", "preset": "veryfast"}
        self._audio_in = None
        self._audio_out = None
        if audio_from is not None:
            self._open_audio(audio_from, fmt)

    def _open_audio(self, source: Path, fmt: str) -> None:
        src = av.open(str(source))
        if not src.streams.audio:
            src.close()
            return
        self._audio_in = src
        stream = src.streams.audio[0]
        if fmt in ("mp4", "mov") and stream.codec_context.name not in MP4_AUDIO:
            self._audio_out = self._out.add_stream("aac", rate=stream.rate)
            self._audio_copy = False
        else:
            self._audio_out = self._out.add_stream_from_template(stream)
            self._audio_copy = True

    def write(self, frame: np.ndarray, timestamp: float | None = None) -> None:
        """Append one ``(H, W, 3) uint8 BGR`` frame.

        Frames are spaced 1/fps apart, or placed at ``timestamp`` seconds when given (a live
        camera whose frames do not arrive at a fixed rate).
        """
        vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
        pts = self.frames_written if timestamp is None else round(timestamp * self.fps)
        vf.pts = self._last_pts = max(pts, self._last_pts + 1)
        try:
            for packet in self._video.encode(vf):
                self._out.mux(packet)
        except OSError as exc:
            raise FacecamError(f"writing {self.path} failed: {exc.strerror or exc}") from exc
        self.frames_written += 1

    def _mux_audio(self) -> None:
        """Audio up to the end of the last written frame (all of it for a complete run)."""
        stream = self._audio_in.streams.audio[0]
        end = Fraction(self._last_pts + 1) / self.fps
        if self._audio_copy:
            for packet in self._audio_in.demux(stream):
                if packet.dts is None:
                    continue
                if packet.pts is not None and packet.pts * stream.time_base >= end:
                    break
                packet.stream = self._audio_out
                self._out.mux(packet)
            return
        for frame in self._audio_in.decode(stream):
            if frame.time is not None and frame.time >= end:
                break
            frame.pts = None
            for packet in self._audio_out.encode(frame):
                self._out.mux(packet)
        for packet in self._audio_out.encode(None):
            self._out.mux(packet)

    def close(self, keep: bool = True) -> None:
        """Finish (``keep``) or discard the output; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if keep and self.frames_written:
                for packet in self._video.encode(None):
                    self._out.mux(packet)
                if self._audio_in is not None:
                    self._mux_audio()
            self._out.close()
        except (av.error.FFmpegError, OSError) as exc:
            keep = False
            raise FacecamError(f"finishing {self.path} failed: {exc}") from exc
        finally:
            if self._audio_in is not None:
                self._audio_in.close()
            if keep and self.frames_written:
                os.replace(self.tmp, self.path)
            elif self.tmp.exists():
                self.tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Ctrl-C keeps what was processed (a playable, shorter file); an error discards it.
        self.close(keep=exc_type is None or issubclass(exc_type, KeyboardInterrupt))

"""Video files out with PyAV: frames ``(H, W, 3) uint8 BGR`` encoded, the source's audio kept
(files in: ``video_reader``).

The writer encodes into a hidden temporary file beside the target and renames it into place
when it is finished. A run cut short (Ctrl-C, a fault, a full disk) still ends in a playable
file with the frames done so far: at the output path, or, when that path already held a file,
beside it as ``NAME.partial.SUFFIX`` so the existing file is never replaced by a partial one.
A finished MP4/MOV is remuxed into an ordinary file first (``remux.py``: real durations for
every player); a partial one stays fragmented.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from facecam.errors import FacecamError, close_during_error, interrupts_deferred
from facecam.realtime.remux import check_output_file, free_bytes, remux, remux_temp, trim_incomplete_boxes

#: output container by file suffix
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
#: stop writing when the output's disk has less than this free: the file is then still finished cleanly
DISK_RESERVE = 1 << 20
#: check the free space every this many frames
DISK_CHECK_EVERY = 10
#: the colour matrix, primaries and transfer the output is written with and tagged (ITU-T H.273
#: code 1, BT.709), and its range (1: limited, 16-235)
BT709 = 1
LIMITED_RANGE = 1
#: audio codecs an MP4/MOV can carry as they are; others are re-encoded to AAC
MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


def even_sided(frame: np.ndarray) -> np.ndarray:
    """``frame`` (``(H, W, 3)``) with a copy of its last row and column added where ``H`` and
    ``W`` are odd, so that 4:2:0 can carry it: the picture is kept whole, one pixel larger."""
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return cv2.copyMakeBorder(frame, 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)


def check_output_path(path: Path, inputs: tuple[Path, ...] = ()) -> None:
    """Fail before any work when ``path`` cannot be written or would overwrite an input."""
    check_output_file(path, inputs, CONTAINERS)


class VideoWriter:
    """Encode frames to ``path`` (H.264) at ``fps``, copying the audio of ``audio_from`` if given.

    Frames are timed on a clock of ``time_base`` seconds a tick (1/fps unless given; pass the
    source's to keep its exact frame times; AVI always ticks at 1/fps). ``comment``, when given,
    is written into the file's metadata (e.g. that its frame rate was assumed).
    ``sample_aspect`` (width / height of a pixel), when given, is written for players to show
    non-square pixels as wide as they are meant (an anamorphic source's, see VideoReader).

    Use as a context manager or call :meth:`close`. ``close(keep=True)`` finishes the file
    and renames it into place; ``close(keep=False)`` removes it. With no frame written
    nothing is created. MP4/MOV output is fragmented (a fragment a second), so the hidden
    temporary file stays playable up to its last fragment even if the process is killed, and
    a full disk leaves whole fragments; audio is interleaved as the video advances. A run
    that ends complete is remuxed into an ordinary MP4/MOV (moov first) before the rename.
    """

    def __init__(
        self,
        path: str | Path,
        fps: Fraction,
        width: int,
        height: int,
        audio_from: Path | None = None,
        audio_offset: Fraction = Fraction(0),
        time_base: Fraction | None = None,
        comment: str | None = None,
        sample_aspect: Fraction | None = None,
    ) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.frames_written = 0
        self._last_pts = -1
        self._last_seconds = Fraction(0)
        self._clock_shift = Fraction(0)  # added to source times after their clock went back
        self._closed = False
        self._complete = True
        self._existed = self.path.exists()
        self.kept_path: Path | None = None
        fmt = CONTAINERS.get(self.path.suffix.lower())
        if fmt is None:
            raise FacecamError(f"output {self.path}: unsupported suffix; use one of {', '.join(CONTAINERS)}")
        self._format = fmt
        self._fragmented = fmt in ("mp4", "mov")
        # AVI has one tick a frame: a finer clock would make it a file of mostly empty frames.
        self.time_base = Fraction(time_base) if time_base and fmt != "avi" else 1 / self.fps
        fragments = {"movflags": "empty_moov+default_base_moof", "frag_duration": "1000000"}
        options = fragments if self._fragmented else {}
        try:
            self._out = av.open(str(self.tmp), "w", format=fmt, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise FacecamError(f"cannot write {self.path}: {exc}") from exc
        if comment:
            self._out.metadata["comment"] = comment
        self._video = self._out.add_stream("libx264", rate=self.fps)
        # H.264 in 4:2:0, the only form every player decodes (QuickTime, Firefox, Windows and
        # phone decoders refuse 4:4:4), has even sides: an odd side gets one more pixel, a copy
        # of its last row or column (see even_sided)
        self._video.width, self._video.height = width + width % 2, height + height % 2
        self._video.pix_fmt = "yuv420p"
        # BT.709, limited range, and said so in the stream: untagged, its YUV (made with the
        # BT.601 matrix, FFmpeg's default) was shown by players with the BT.709 matrix they assume
        # for HD, a pure green 200 as 167 and a red turned orange
        context = self._video.codec_context
        context.colorspace = context.color_primaries = context.color_trc = BT709
        context.color_range = LIMITED_RANGE
        self._video.time_base = self._video.codec_context.time_base = self.time_base
        if sample_aspect:  # non-square pixels (VideoReader.sample_aspect): shown as wide as the source
            self._video.codec_context.sample_aspect_ratio = Fraction(sample_aspect)
        # No B-frames: a fragmented MP4 has no edit list to hide their decoding delay, so the
        # video would start two frames (67 ms at 30 fps) after its audio. Without them the file
        # is ~20% larger and frames leave the encoder at once.
        self._video.options = {"crf": "20", "preset": "veryfast", "bf": "0"}
        self._audio_in = None
        self._audio_packets = None
        self._pending = None
        if audio_from is not None:
            self._open_audio(audio_from, fmt, Fraction(audio_offset))

    def _open_audio(self, source: Path, fmt: str, offset: Fraction) -> None:
        src = av.open(str(source))
        if not src.streams.audio:
            src.close()
            return
        self._audio_in = src
        stream = src.streams.audio[0]
        codec = stream.codec_context.name
        # AAC out of MPEG-TS/ADTS/FLV carries headers and tags MP4 refuses as they are: re-encode it too.
        foreign_aac = codec == "aac" and not any(n in src.format.name for n in ("mp4", "mov", "matroska"))
        if fmt in ("mp4", "mov") and (codec not in MP4_AUDIO or foreign_aac):
            out = self._out.add_stream("aac", rate=stream.rate)
            self._audio_packets = _transcoded(src, stream, out, offset)
        else:
            out = self._out.add_stream_from_template(stream)
            self._audio_packets = _copied(src, stream, out, offset)

    def _pump_audio(self, until: Fraction | None) -> None:
        """Mux the audio packets that start before ``until`` seconds (all of them for None)."""
        while self._audio_packets is not None:
            if self._pending is None:
                self._pending = next(self._audio_packets, None)
                if self._pending is None:
                    self._audio_packets = None
                    return
            start, packet = self._pending
            if until is not None and start is not None and start >= until:
                return
            self._out.mux(packet)
            self._pending = None

    def _mux(self, packets) -> None:
        try:
            for packet in packets:
                self._out.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise FacecamError(f"writing {self.path} failed ({reason})") from exc

    def write(self, frame: np.ndarray, timestamp: float | None = None) -> None:
        """Append one ``(H, W, 3) uint8 BGR`` frame.

        Frames are spaced 1/fps apart, or placed at ``timestamp`` seconds when given (a live
        camera, or a file whose frame rate varies). A Ctrl-C arriving meanwhile is
        raised after the frame and its audio are written, so :meth:`close` finds them consistent.
        """
        with interrupts_deferred():
            self._write(frame, timestamp)

    def _write(self, frame: np.ndarray, timestamp: float | None) -> None:
        if self.frames_written % DISK_CHECK_EVERY == 0:
            self._check_disk()
        vf = av.VideoFrame.from_ndarray(even_sided(frame), format="bgr24").reformat(
            format=self._video.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG"
        )
        if timestamp is None:
            seconds = self.frames_written / self.fps
        else:
            seconds = Fraction(timestamp) + self._clock_shift
            if self.frames_written and seconds <= self._last_seconds:
                # The source's clock went back or stood still (joined recordings, a broken file):
                # go on one frame after the last, keeping the source's spacing from there.
                self._clock_shift += self._last_seconds + 1 / self.fps - seconds
                seconds = self._last_seconds + 1 / self.fps
        self._last_seconds = seconds
        vf.pts = self._last_pts = max(round(seconds / self.time_base), self._last_pts + 1)
        self._mux(self._video.encode(vf))
        self.frames_written += 1
        if self._audio_packets is not None:
            self._mux_audio_until(self._last_pts * self.time_base)

    def _free_bytes(self) -> int:
        return free_bytes(self.tmp.parent)

    def _check_disk(self) -> None:
        """Stop before the disk is full: FFmpeg does not always report a failed write."""
        if self._free_bytes() < DISK_RESERVE:
            raise FacecamError(
                f"the disk of {self.path} is full (under {DISK_RESERVE >> 20} MiB free); free some space"
            )

    def _mux_audio_until(self, until: Fraction | None) -> None:
        try:
            self._pump_audio(until)
        except (av.error.FFmpegError, OSError) as exc:
            raise FacecamError(f"writing audio to {self.path} failed ({exc})") from exc

    def close(self, keep: bool = True) -> None:
        """Finish (``keep``) or discard the output; safe to call twice. A complete MP4/MOV is
        remuxed into an ordinary file. When finishing or the remux fails (a full disk), the
        frames written still take the output's name, playable, and the error is raised after.
        A Ctrl-C while finishing is raised once the file is in place; one during the remux
        (seconds on a long file) ends it, and the fragmented file takes the name."""
        if self._closed:
            return
        self._closed = True
        error, stop = None, None
        try:
            with interrupts_deferred():
                error = self._finish(keep)
        except KeyboardInterrupt as exc:  # held while finishing: the file goes in place first, not remuxed
            stop = exc
        if not (keep and self.frames_written and self.tmp.exists()):
            self.tmp.unlink(missing_ok=True)
        else:
            complete = error is None and self._complete
            ready = self.tmp
            if complete and self._fragmented and stop is None:
                ready, error = self._remuxed()
            with interrupts_deferred():
                os.replace(ready, self._final_path(complete))
                self.tmp.unlink(missing_ok=True)
            if error is not None and not complete:
                error = FacecamError(f"{error}; the {self.frames_written} frames written are kept in {self.kept_path}")
        if error is not None:
            raise error
        if stop is not None:
            raise stop

    def _finish(self, keep: bool) -> FacecamError | None:
        """Flush the encoder and the audio, close the file; what went wrong, if anything."""
        error: FacecamError | None = None
        try:
            if keep and self.frames_written:
                self._mux(self._video.encode(None))
                self._mux_audio_until(self._last_pts * self.time_base + 1 / self.fps)
        except FacecamError as exc:
            error = exc
        try:
            self._out.close()
            if self._free_bytes() == 0:  # a write failed that FFmpeg kept quiet about
                raise OSError(28, "No space left on device")
        except (av.error.FFmpegError, OSError) as exc:
            error = error or FacecamError(f"finishing {self.path} failed ({getattr(exc, 'strerror', None) or exc})")
        finally:
            if self._audio_in is not None:
                self._audio_in.close()
            if error is not None and self._fragmented and self.tmp.exists():
                trim_incomplete_boxes(self.tmp)
        return error

    def _remuxed(self) -> tuple[Path, FacecamError | None]:
        """The remuxed file, or the fragmented one (complete, playable) and why the remux failed.
        A Ctrl-C puts the fragmented file in place and goes on: every frame is in it."""
        target = remux_temp(self.path)
        try:
            remux(self.tmp, target, self._format, reserve=DISK_RESERVE)
        except FacecamError as exc:
            return self.tmp, FacecamError(
                f"could not make {self.path} an ordinary {self.path.suffix} file ({exc}); it holds all "
                f"{self.frames_written} frames, fragmented: it plays, but some players show a wrong duration; "
                f"`facecam --video {self.path} --remux-only --out FIXED{self.path.suffix}` fixes that"
            )
        except BaseException:
            with interrupts_deferred():
                os.replace(self.tmp, self._final_path(complete=True))
            raise
        return target, None

    @property
    def closed(self) -> bool:
        return self._closed

    def mark_incomplete(self) -> None:
        """The run stopped early (fault or Ctrl-C): the output holds only the frames done so far."""
        self._complete = False

    def _final_path(self, complete: bool) -> Path:
        """Where the finished file goes: the output path, unless a partial result would replace a
        file the user already had; then beside it as NAME.partial.SUFFIX, so nothing is lost."""
        target = self.path
        if not complete and self._existed:
            target = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}")
        self.kept_path = target
        return target

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close(keep=True)
        else:  # the block's error says why it stopped; a failure to finish the file is added to it
            close_during_error(exc, f"finishing {self.path}", lambda: self.close(keep=True))


def _copied(src, stream, out_stream, offset: Fraction):
    """(start seconds, packet) of ``stream`` for ``out_stream``, shifted back by ``offset`` s."""
    shift = round(offset / stream.time_base) if stream.time_base else 0
    for packet in src.demux(stream):
        if packet.dts is None:
            continue
        if packet.pts is not None:
            if packet.pts - shift < 0:
                continue  # audio from before the first video frame
            packet.pts -= shift
        packet.dts -= shift
        start = packet.pts * stream.time_base if packet.pts is not None else None
        packet.stream = out_stream
        yield start, packet


def _transcoded(src, stream, out_stream, offset: Fraction):
    """(start seconds, packet) of ``stream`` re-encoded by ``out_stream`` (AAC), shifted back by ``offset`` s."""
    for frame in src.decode(stream):
        start = Fraction(frame.time).limit_denominator(10**6) - offset if frame.time is not None else None
        if start is not None and start < 0:
            continue
        frame.pts = None
        for packet in out_stream.encode(frame):
            yield start, packet
    for packet in out_stream.encode(None):
        yield None, packet

"""Video files in: frames decoded as ``(H, W, 3) uint8 BGR``, with the time each is shown.

The writer, and how a run cut short still ends in a playable file, is ``video_io``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from facecam.errors import FacecamError

#: frame times not taken this many frames after they were yielded are forgotten (a reader
#: used without a writer, as the benchmark does); a pipeline holds at most a few dozen
FRAME_TIMES_KEPT = 1024
#: frames a second taken for a video that states no rate (and said so: ``VideoReader.fps_assumed``)
ASSUMED_FPS = Fraction(30)


def frame_rate(average: Fraction | None, guessed: Fraction | None) -> tuple[Fraction, bool]:
    """The stream's frame rate and whether it was assumed (ASSUMED_FPS: the stream states none)."""
    for rate in (average, guessed):
        if rate:  # None or 0 when the container does not say
            return Fraction(rate), False
    return ASSUMED_FPS, True


#: a frame that does not say its colour matrix is read with the one players assume: BT.709 when
#: it is taller than standard definition (an HD camera's), BT.601 otherwise
SD_MAX_HEIGHT = 576
UNSPECIFIED_MATRIX = 2  # ITU-T H.273's "unspecified" (FFmpeg's AVCOL_SPC_UNSPECIFIED)

#: the transfers of HDR video (ITU-T H.273): 16 PQ (SMPTE ST 2084), 18 HLG (ARIB STD-B67)
HDR_TRANSFERS = {16: "PQ", 18: "HLG"}

#: cv2.rotate's code for each number of counter-clockwise quarter turns
_TURN_CODES = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}


def upright_turns(rotation: float) -> int:
    """The counter-clockwise quarter turns (0-3) that show a decoded frame as its file means it to
    be shown, from the display rotation its container states (degrees counter-clockwise, PyAV's
    ``VideoFrame.rotation``: a phone held upright stores its video sideways and says so there).
    0 for an angle that is no multiple of 90 degrees, which no camera writes."""
    turns = round(rotation / 90)
    return turns % 4 if abs(rotation - 90 * turns) < 1 else 0


def assumed_matrix(colorspace: int | None, height: int) -> str | None:
    """The colour matrix to read a frame with: None (its own) when it says one, else the one
    players assume for its height (SD_MAX_HEIGHT). FFmpeg alone would take BT.601 for every
    untagged frame, and an untagged HD video's colours would come out otherwise than a player
    shows them (and go into the output so)."""
    if colorspace not in (None, UNSPECIFIED_MATRIX):
        return None
    return "ITU709" if height > SD_MAX_HEIGHT else "ITU601"


def bgr_of(frame: av.VideoFrame) -> np.ndarray:
    """A decoded frame as ``(H, W, 3) uint8 BGR``, through its colour matrix (assumed_matrix)."""
    return frame.to_ndarray(format="bgr24", src_colorspace=assumed_matrix(frame.colorspace, frame.height))


def turned_upright(image: np.ndarray, turns: int) -> np.ndarray:
    """``image`` turned ``turns`` quarter turns counter-clockwise (itself for 0)."""
    return cv2.rotate(image, _TURN_CODES[turns]) if turns else image


def upright_sample_aspect(stored: Fraction | None, turns: int) -> Fraction | None:
    """The width / height of a pixel of the upright frame, from the stored frame's (``turns``
    quarter turns away; a quarter turn swaps a pixel's sides); None for square pixels or where
    the file does not say (0/1, as FFmpeg reports "unknown")."""
    if not stored or stored == 1:
        return None
    aspect = Fraction(stored)
    return 1 / aspect if turns % 2 else aspect


#: packets a reader's peek at the first frame (see _first_frame_turns) decodes at most
PEEK_PACKETS = 64


def _first_frame_turns(path: Path) -> int:
    """upright_turns of the first frame of ``path`` that decodes (in a container of its own, so
    the reader starts from the top; packets that fail to decode are passed over, as the reader
    does); 0 when none does within PEEK_PACKETS packets (the reader then says why)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for count, packet in enumerate(container.demux(stream)):
                if count >= PEEK_PACKETS:
                    break
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    continue
                for frame in decoded:
                    return upright_turns(float(frame.rotation or 0))
    except (av.error.FFmpegError, IndexError, UnicodeDecodeError, ValueError):
        pass
    return 0


def estimated_frames(path: str) -> int:
    """The frames the container says ``path`` has (from its header: no decoding): its count, else
    its video stream's duration, else the container's (a Matroska file states only that), times
    the frame rate; 0 when it says none of these."""
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if stream.duration and stream.time_base and stream.average_rate:
                return int(stream.duration * stream.time_base * stream.average_rate)
            if container.duration and stream.average_rate:
                return int(container.duration / av.time_base * stream.average_rate)
    except (av.error.FFmpegError, IndexError, UnicodeDecodeError, ValueError):
        pass
    return 0


class VideoReader:
    """Decode a video file frame by frame.

    ``fps`` (Fraction, the average rate; ASSUMED_FPS with ``fps_assumed`` True where the file
    states none), ``width``, ``height``, ``start_seconds`` (the first
    video timestamp) and ``time_base`` (the stream's clock tick) describe it. A missing file, a
    non-video or an undecodable one is a FacecamError. Frames that fail to decode mid-stream
    are skipped and counted in ``skipped``, so one corrupt frame does not end a long file.
    Frames come upright: a file that says it is shown turned (a phone's portrait video, stored
    sideways) is turned as a player shows it (``turns``, see upright_turns), and ``width`` and
    ``height`` are the upright frame's. Faces are then found the right way up, and the output,
    written upright, needs no player to turn it. ``sample_aspect`` is the shape of the upright
    frame's pixels (width / height) where they are not square (a DV or HDV camcorder's
    anamorphic 16:9: 720x480 at 32:27, 1440x1080 at 4:3), else None; the writer keeps it, so
    the output is shown as wide as its source. ``hdr`` names an HDR source's transfer ("HLG",
    "PQ"; None for SDR): its frames are converted to 8 bits without tone mapping.
    :meth:`take_frame_time` says when a yielded frame is shown: phone videos change their frame
    rate mid-file, and a copy timed at the average rate drifts from its audio.
    """

    def __init__(self, path: str | Path, decode_threads: int = 0) -> None:
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
        if decode_threads:  # 0: FFmpeg's choice; a worker that shares the cores with others: 1
            self._stream.codec_context.thread_count = decode_threads
        ctx = self._stream.codec_context
        if not ctx.width or not ctx.height:
            self._container.close()
            raise FacecamError(f"{self.path}: video stream has no frame size; is the file complete?")
        self.turns = _first_frame_turns(self.path)
        self.width, self.height = (ctx.height, ctx.width) if self.turns % 2 else (ctx.width, ctx.height)
        self.sample_aspect = upright_sample_aspect(self._stream.sample_aspect_ratio, self.turns)
        self.hdr = HDR_TRANSFERS.get(int(ctx.color_trc or 0))  # "HLG", "PQ", or None for SDR
        self.fps, self.fps_assumed = frame_rate(self._stream.average_rate, self._stream.guessed_rate)
        start = self._stream.start_time
        # Output frames are timed from 0; the audio is shifted by the same start (MPEG-TS starts late).
        self.start_seconds = Fraction(start * self._stream.time_base) if start is not None else Fraction(0)
        self.time_base = Fraction(self._stream.time_base) if self._stream.time_base else None
        self.skipped = 0
        self._frame_times: dict[int, Fraction | None] = {}  # yielded, not yet taken
        self._yielded = 0

    def frames(self, keep: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:
        """Every decodable frame in order, as ``(H, W, 3) uint8 BGR``; with ``keep``, None for
        each frame whose index (from 0) it turns down: decoded (the next ones need it), not
        converted (see video_parts: a worker passes over the other workers' frames)."""
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    self.skipped += 1
                    continue
                for frame in decoded:
                    self._frame_times[self._yielded] = self._seconds(frame)
                    self._frame_times.pop(self._yielded - FRAME_TIMES_KEPT, None)
                    self._yielded += 1
                    if keep is None or keep(self._yielded - 1):
                        yield turned_upright(bgr_of(frame), self.turns)
                    else:
                        yield None
        except av.error.FFmpegError as exc:
            raise FacecamError(f"{self.path}: decoding stopped ({exc})") from exc

    def take_frame_time(self, index: int) -> Fraction | None:
        """When the ``index``-th yielded frame (from 0) is shown, in seconds from ``start_seconds``;
        None where the file does not say. Each is handed out once, and those never asked for
        are dropped after FRAME_TIMES_KEPT frames, so a long file holds only a few."""
        return self._frame_times.pop(index, None)

    def _seconds(self, frame: av.VideoFrame) -> Fraction | None:
        time_base = frame.time_base or self.time_base
        if frame.pts is None or not time_base:
            return None
        return frame.pts * Fraction(time_base) - self.start_seconds

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

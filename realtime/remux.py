"""Fragmented MP4/MOV into an ordinary one, by stream copy (no frame is re-encoded).

The writer records MP4/MOV as fragments (a ``moof`` + ``mdat`` a second) so that a run cut
short still leaves a playable file. Such a file's ``moov`` holds no durations (``mvhd`` says 0,
no ``mehd``, no ``sidx``): FFmpeg-based players find the length through the ``mfra`` at the
end, but a browser reading it as a stream and GStreamer's discoverer do not (they report a
second or two, or a wrong length). On a clean finish the fragments are copied, packet for
packet with their exact times, into an ordinary file with the ``moov`` at the front
("faststart"): every player reads the real duration, and a browser before it has downloaded
the whole file. ``facecam --video PARTIAL --remux-only --out FIXED`` does the same for the
fragmented file an interrupted run left, as ``ffmpeg -i PARTIAL -c copy -movflags +faststart
FIXED`` does.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av

from facecam.errors import FacecamError

#: the outputs written fragmented, and so remuxed: suffix -> FFmpeg muxer
FASTSTART_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
#: remux only while this much would stay free after the copy (the writer's own reserve)
SPACE_RESERVE = 1 << 20
#: container tags the MP4/MOV muxer sets itself: not copied from the fragmented file
MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})


def complete_length(path: Path) -> int:
    """Bytes of ``path`` up to its last complete top-level MP4 box (a ``moof`` counts only
    with its whole ``mdat``): what a crash or a full disk left intact."""
    size = path.stat().st_size
    end = 0
    with open(path, "rb") as f:
        while end + 8 <= size:
            f.seek(end)
            header = f.read(16)
            box = int.from_bytes(header[:4], "big")
            if box == 1 and len(header) >= 16:
                box = int.from_bytes(header[8:16], "big")
            elif box == 0:  # "up to the end of the file" (a last mdat written by some cameras)
                box = size - end
            if box < 8 or end + box > size:
                break
            if header[4:8] == b"moof":  # a fragment counts only with its media data
                after = end + box
                f.seek(after)
                nxt = f.read(8)
                mdat = int.from_bytes(nxt[:4], "big") if len(nxt) == 8 else 0
                if nxt[4:8] != b"mdat" or mdat < 8 or after + mdat > size:
                    break
                box += mdat
            end += box
    return end


def trim_incomplete_boxes(path: Path) -> int:
    """Cut a fragmented MP4 back to its last complete top-level box; returns the new size.

    After a full disk or a crash the last fragment is cut off mid-write; players and
    decoders stumble on it. Without it the file plays every complete fragment.
    """
    end = complete_length(path)
    if end < path.stat().st_size:
        os.truncate(path, end)
    return end


def free_bytes(folder: Path) -> int:
    # shutil.disk_usage works on Windows too (os.statvfs is Unix-only)
    return shutil.disk_usage(folder).free


def remux(source: Path, target: Path, fmt: str, reserve: int = SPACE_RESERVE) -> int:
    """Copy the video and audio packets of ``source`` into ``target`` (muxer ``fmt``) as an
    ordinary file with its ``moov`` first; returns the packets copied.

    Packets past the last complete box of an MP4/MOV source (the torn end of a killed run)
    are left out. Any failure (a full disk, a codec ``fmt`` cannot hold) is a FacecamError
    and removes ``target``, as does a Ctrl-C (which goes on); ``source`` is only read.
    """
    source, target = Path(source), Path(target)
    needed = source.stat().st_size + reserve
    if free_bytes(target.parent) < needed:
        raise FacecamError(f"under {needed >> 20} MiB free beside {target.name}")
    try:
        copied = _copy_packets(source, target, fmt)
        # FFmpeg does not always report a failed write: read the frames back before trusting the copy.
        # (Audio is not counted: a demuxer may drop a last packet of no length that the muxer took.)
        back = _count_packets(target).get("video", 0)
        if back != copied["video"]:
            raise FacecamError(f"the copy reads back {back} of {copied['video']} frames")
    except BaseException as exc:
        target.unlink(missing_ok=True)
        if isinstance(exc, (av.error.FFmpegError, OSError)):
            raise FacecamError(getattr(exc, "strerror", None) or str(exc)) from exc
        if isinstance(exc, ValueError):  # PyAV: the container cannot hold a codec of the source
            raise FacecamError(str(exc)) from exc
        raise
    return sum(copied.values())


def _copy_packets(source: Path, target: Path, fmt: str) -> dict[str, int]:
    """Packets copied, by stream type (only video and audio: timecode or data tracks of a
    camera's file have no place in every container and no use in a player)."""
    end = complete_length(source) if _is_iso_media(source) else None
    counts = {"video": 0, "audio": 0}
    # faststart: the muxer writes the moov at the end, then moves it before the media data.
    with av.open(str(source)) as src, av.open(str(target), "w", format=fmt, options={"movflags": "+faststart"}) as dst:
        streams = [s for s in src.streams if s.type in ("video", "audio")]
        if not any(s.type == "video" for s in streams):
            raise FacecamError("no video stream")
        # The template keeps each stream's time base, so every frame keeps its exact time
        # (a variable frame rate survives) and the audio its place beside the video.
        out = {s.index: dst.add_stream_from_template(s) for s in streams}
        dst.metadata.update(_carried_metadata(src.metadata))
        for packet in src.demux(streams):
            if packet.dts is None:  # the demuxer's end-of-stream marker: no data
                continue
            if end is not None and packet.pos is not None and packet.pos + packet.size > end:
                continue  # cut off by a crash: half a frame would only make decoders stumble
            kind = packet.stream.type
            packet.stream = out[packet.stream.index]
            dst.mux(packet)
            counts[kind] += 1
        if not counts["video"]:  # a killed run's file with not one whole fragment
            raise FacecamError("not one complete frame in it")
    return counts


def _carried_metadata(tags: dict[str, str]) -> dict[str, str]:
    """The file's own tags (a comment, a title), without those the muxer writes itself (brands, encoder)."""
    return {k: v for k, v in tags.items() if k not in MUXER_TAGS}


def _count_packets(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with av.open(str(path)) as c:
        for packet in c.demux():
            if packet.dts is not None:
                counts[packet.stream.type] = counts.get(packet.stream.type, 0) + 1
    return counts


def _is_iso_media(path: Path) -> bool:
    """An MP4/MOV-family file (boxes from the first byte), whose torn end can be found."""
    with open(path, "rb") as f:
        return f.read(8)[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def check_output_file(path: Path, inputs: tuple[Path, ...], suffixes) -> None:
    """Fail before any work when ``path`` (a file with one of ``suffixes``) cannot be written or
    would overwrite one of ``inputs``."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise FacecamError(f"output {path}: unsupported suffix; use one of {', '.join(suffixes)}")
    for source in inputs:
        if path.resolve() == Path(source).resolve() or (path.exists() and os.path.samefile(path, source)):
            raise FacecamError(f"output {path} is the input file; choose another output path")
    if path.is_dir():
        raise FacecamError(
            f"output {path} is a folder; give a file name such as {path / ('out' + next(iter(suffixes)))}"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FacecamError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise FacecamError(f"output folder {parent} is not writable")


def remux_file(source: Path, out: Path) -> int:
    """``facecam --video SOURCE --remux-only --out OUT``: the packets copied.

    Bad input is a FacecamError before anything is written; the result goes to a hidden
    temporary file beside ``out`` and takes its name only when complete, so neither the input
    nor a file already at ``out`` is ever lost.
    """
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise FacecamError(f"video {source} does not exist")
    check_output_file(out, (source,), FASTSTART_FORMATS)
    fmt = FASTSTART_FORMATS[out.suffix.lower()]
    tmp = remux_temp(out)
    if tmp.resolve() == source.resolve():
        raise FacecamError(f"{source} has the name of facecam's temporary file for {out}; rename it first")
    try:
        with av.open(str(source)):
            pass
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise FacecamError(f"{source} is not a readable video ({type(exc).__name__})") from exc
    try:
        copied = remux(source, tmp, fmt)
        os.replace(tmp, out)
    except FacecamError as exc:
        raise FacecamError(f"cannot remux {source} into {out}: {exc}") from exc
    except BaseException:  # a Ctrl-C between the copy and the rename: no hidden file left
        tmp.unlink(missing_ok=True)
        raise
    return copied


def remux_temp(path: Path) -> Path:
    """The hidden file a remux into ``path`` writes first (beside it: the rename stays on one disk)."""
    return path.with_name(f".{path.stem}.remux.partial{path.suffix}")

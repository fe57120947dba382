"""What the remux of a finished MP4 costs, in seconds per minute of 720p video (README, Reliability).

    python scripts/remux_cost.py ../shared/data/videos/d3.mp4 --seconds 60 --runs 3

The source's frames are scaled to 1280x720 and looped to ``--seconds``, with a 44.1 kHz stereo
AAC track, and written by facecam's own VideoWriter (its encoder settings, its fragments), as
the temporary file of a run stands just before the remux. The remux of that file is then timed
``--runs`` times (median), read from the page cache as it is right after a run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from facecam.realtime.remux import remux
from facecam.realtime.video_io import VideoWriter
from facecam.realtime.video_reader import VideoReader

SIZE = (1280, 720)


def make_source(video: Path, seconds: float, out: Path) -> Path:
    """``video`` at 1280x720, looped to ``seconds``, with a tone for audio (x264 ultrafast: only a source)."""
    with VideoReader(video) as reader:
        frames = [cv2.resize(f, SIZE, interpolation=cv2.INTER_CUBIC) for f in reader.frames()]
        fps = reader.fps
    count = round(seconds * fps)
    with av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "16"}
        audio = dst.add_stream("aac", rate=44100, layout="stereo")
        for i in range(count):
            dst.mux(stream.encode(av.VideoFrame.from_ndarray(frames[i % len(frames)], format="bgr24")))
        dst.mux(stream.encode(None))
        tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(round(44100 * count / fps)) / 44100)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = np.repeat(tone[None, start : start + 1024], 2, axis=0)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
            dst.mux(audio.encode(frame))
        dst.mux(audio.encode(None))
    return out


def fragmented_output(source: Path, out: Path) -> Path:
    """``source`` through facecam's writer, left fragmented as it is before the remux."""
    with VideoReader(source) as reader:
        size, tick = (reader.width, reader.height), reader.time_base
        writer = VideoWriter(out, reader.fps, *size, audio_from=source, time_base=tick)
        for i, frame in enumerate(reader.frames()):
            writer.write(frame, timestamp=reader.take_frame_time(i))
    writer.mark_incomplete()  # keeps the fragments: the file the remux starts from
    writer.close(keep=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video", type=Path, help="any video; its frames are scaled to 1280x720 and looped")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="facecam-remux-") as tmp:
        folder = Path(tmp)
        fragmented = fragmented_output(make_source(args.video, args.seconds, folder / "src.mp4"), folder / "out.mp4")
        with av.open(str(fragmented)) as c:
            seconds = c.duration / 1e6
        times = []
        for run in range(args.runs):
            target = folder / f"remuxed{run}.mp4"
            start = time.perf_counter()
            remux(fragmented, target, "mp4")
            times.append(time.perf_counter() - start)
            target.unlink()
        median = statistics.median(times)
        size = fragmented.stat().st_size / 1e6
        print(f"{seconds:.1f} s of 1280x720 video + AAC, {size:.1f} MB: remux {', '.join(f'{t:.3f}' for t in times)} s")
        print(f"median {median:.3f} s = {median / seconds * 60:.3f} s per minute of video")


if __name__ == "__main__":
    main()

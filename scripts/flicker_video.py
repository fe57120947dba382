"""Flicker of a mask video at full resolution: the share of mask pixels that toggle from one
frame to the next, over the mask's mean area (the definition ``../shared/anchors`` uses for
MediaPipe's face mesh). ``python scripts/flicker_video.py m.mp4`` after ``facecam --video CLIP
--out m.mp4 --mode mask``."""

from __future__ import annotations

import sys
from pathlib import Path

from facecam.api import video_frames
from facecam.errors import FacecamError, cli_entry
from facecam.realtime.smoothing import FlickerMeter


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_file():
        raise FacecamError("usage: flicker_video.py MASK_VIDEO.mp4 (a video written by facecam --mode mask)")
    meter = FlickerMeter()
    for frame in video_frames(args[0]):
        meter.add(frame[..., 0])
    print(f"{meter.value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

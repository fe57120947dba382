"""A 16:9 HD talking-head clip (1280x720 or 1920x1080) from a square one, for the CPU budget.

The clips in ``../shared/data/videos`` are 512x512 (d3, talking_head) or portrait (d13); a
webcam sends 16:9. This scales the square clip to the target height and extends its sides
with its own edge pixels, so the face is a webcam's size and nothing else changes. The clips
of ``../shared/data`` may not be shipped; the project keeps this script, not its output:

    python scripts/make_hd_clip.py ../shared/data/videos/d3.mp4 d3_720p.mp4 720
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import cv2

from facecam.errors import FacecamError, cli_entry
from facecam.realtime.video_reader import VideoReader


def widen(frame, height: int):
    """A frame scaled to ``height`` and padded left and right with its edge to 16:9."""
    scaled = cv2.resize(frame, (round(frame.shape[1] * height / frame.shape[0]), height), interpolation=cv2.INTER_CUBIC)
    width = height * 16 // 9
    left = max(0, (width - scaled.shape[1]) // 2)
    right = max(0, width - scaled.shape[1] - left)
    return cv2.copyMakeBorder(scaled, 0, 0, left, right, cv2.BORDER_REPLICATE)[:, :width]


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[2] not in ("720", "1080"):
        raise FacecamError("usage: make_hd_clip.py SOURCE.mp4 OUT.mp4 720|1080")
    height = int(args[2])
    with VideoReader(Path(args[0])) as reader, av.open(args[1], "w") as container:
        stream = container.add_stream("libx264", rate=reader.fps)
        stream.width, stream.height, stream.pix_fmt = height * 16 // 9, height, "yuv420p"
        stream.options = {"crf": "18"}
        count = 0
        for frame in reader.frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(widen(frame, height), format="bgr24")):
                container.mux(packet)
            count += 1
        for packet in stream.encode(None):
            container.mux(packet)
    print(f"wrote {args[1]}: {count} frames, {height * 16 // 9}x{height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

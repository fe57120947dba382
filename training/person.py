"""Person photos with person masks -> "not face" training labels for bodies, arms and rooms.

Face data shows almost no bodies, so a model trained on it paints every skin- or red-toned
thing as face: bare arms, a pink dress, an orange jacket, a red shop front. Person data
(photos + binary person masks, ``../shared/data/person``) shows exactly those, but says
nothing about where the face is. This module labels only what is certain:

- outside the person (with a safety ring for the automatic mask's ragged edge): background;
- inside the person, away from every possible head: "not face, class unknown" (254), since a
  body can carry long hair;
- everything that could be a head stays ignored (255): the top of each person, and a head +
  neck box around every face a teacher model finds (also where the teacher over-paints
  a dress below the face: the box stops at the neck, so the dress becomes a negative).

The teacher only widens the ignored zone; it never writes a face label, so its mistakes
cannot be learned back as faces.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError
from facecam.training.dataset import LABEL_IGNORE, LABEL_NOT_FACE, find_image, read_split

#: a blob smaller than this share of the image is not used (noise); a person smaller than
#: ``MIN_PERSON_AREA`` gets no top band (its head is a few pixels)
MIN_FACE_AREA = 0.0002
MIN_PERSON_AREA = 0.002
#: share of a person's height from its top that stays ignored: a whole standing person's head
#: is ~1/8 of their height; a person cut off by the image's bottom edge can be mostly head
TOP_BAND = 0.2
TOP_BAND_CROPPED = 0.35


def head_zones(face: np.ndarray) -> np.ndarray:
    """``(H, W) bool`` teacher face guess -> ``(H, W) bool`` head-and-neck boxes around each blob.

    The head width is the blob's widest row within one bbox width of its top (forehead to
    chin for a frontal face); the box spans 1.25 head widths each side of the head's centre,
    from 0.75 above its top to 2 head widths below it (chin, neck and a margin).
    """
    h, w = face.shape
    zones = np.zeros((h, w), bool)
    count, blobs, stats, _ = cv2.connectedComponentsWithStats(face.astype(np.uint8), connectivity=8)
    for i in range(1, count):
        x, y, bw, bh, area = stats[i]
        if area < MIN_FACE_AREA * h * w:
            continue
        head = blobs[y : y + min(bh, bw), x : x + bw] == i
        widths = head.sum(axis=1)
        head_width = int(widths.max())
        cols = np.nonzero(head.any(axis=0))[0]
        centre = x + int(np.average(cols, weights=head[:, cols].sum(axis=0)))
        x0, x1 = max(0, int(centre - 1.25 * head_width)), min(w, int(centre + 1.25 * head_width) + 1)
        y0, y1 = max(0, int(y - 0.75 * head_width)), min(h, int(y + 2.0 * head_width) + 1)
        zones[y0:y1, x0:x1] = True
    return zones


def top_bands(person: np.ndarray) -> np.ndarray:
    """``(H, W) bool`` person mask -> the top of each person's bbox (TOP_BAND, or TOP_BAND_CROPPED when cut off)."""
    h, w = person.shape
    bands = np.zeros((h, w), bool)
    count, _, stats, _ = cv2.connectedComponentsWithStats(person.astype(np.uint8), connectivity=8)
    for i in range(1, count):
        x, y, bw, bh, area = stats[i]
        if area >= MIN_PERSON_AREA * h * w:
            share = TOP_BAND_CROPPED if y + bh >= h - 1 else TOP_BAND
            bands[y : y + max(1, int(np.ceil(share * bh))), x : x + bw] = True
    return bands


def body_negative_labels(person: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Person mask and teacher face guess (both ``(H, W) bool``) -> ``(H, W) uint8`` label map.

    0 outside the (dilated) person, 254 on the body away from any head, 255 elsewhere.
    The person mask is the authority on where people are: teacher blobs outside it are
    almost always the teacher's own mistakes (a red shop front, a wall), which is what these
    labels are for, so they do not stop the background label.
    """
    h, w = person.shape
    ring = max(2, int(0.015 * np.hypot(h, w)))
    near_person = cv2.dilate(person.astype(np.uint8), np.ones((2 * ring + 1, 2 * ring + 1), np.uint8)) > 0
    label = np.full((h, w), LABEL_IGNORE, np.uint8)
    label[~near_person] = 0
    maybe_head = head_zones(face) | top_bands(person)
    label[person & ~maybe_head] = LABEL_NOT_FACE
    return label


@dataclass(frozen=True)
class PersonPrepareConfig:
    """Options of ``facecam-train prepare person``."""

    src: Path  # images/, labels/ (0 background, >0 person), a split list
    out: Path
    teacher: str = "facecam_face"  # a model name in weights/ or an .onnx path
    split: str = "all"
    max_side: int = 512  # larger photos are shrunk to this (training crops are smaller anyway)
    holdout: int = 0  # photos kept out of train.txt, in holdout.txt: for not_face_painted, not Dice/IoU
    seed: int = 0


def teacher_face(segmenter, image_bgr: np.ndarray) -> np.ndarray:
    """Where the teacher sees a face, OR-ed over the model's own size and (when the model
    accepts any size) twice it, which finds smaller faces."""
    from facecam.realtime import processing

    size = segmenter.inference_size(image_bgr.shape[:2])
    scales = (1, 2) if segmenter.card.dynamic_size else (1,)
    guesses = []
    for scale in scales:
        tensor = processing.preprocess(image_bgr, (size[0] * scale, size[1] * scale), segmenter.card)
        probability = segmenter.infer(tensor)
        guesses.append(cv2.resize(probability, image_bgr.shape[1::-1], interpolation=cv2.INTER_LINEAR) > 0.3)
    return np.logical_or.reduce(guesses)


def read_person_pair(src: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W, 3) uint8 BGR`` photo and ``(H, W) bool`` person mask; FacecamError naming what is wrong."""
    image_path, mask_path = find_image(src, name), src / "labels" / f"{name}.png"
    if not mask_path.is_file():  # checked first: OpenCV would print its own warning
        raise FacecamError(f"person mask {mask_path} is missing")
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise FacecamError(f"cannot read image {image_path}")
    mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise FacecamError(f"person mask {mask_path} is unreadable")
    if mask.ndim != 2:
        raise FacecamError(f"person mask {mask_path} is not single-channel")
    if mask.shape != image.shape[:2]:
        raise FacecamError(f"size mismatch for {name}: image {image.shape[1::-1]}, mask {mask.shape[::-1]}")
    return image, mask > 0


def _shrink(image: np.ndarray, person: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray]:
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale == 1:
        return image, person
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    small_person = cv2.resize(person.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), small_person


def _write(path: Path, array: np.ndarray, params: tuple[int, ...] = ()) -> None:
    if not cv2.imwrite(str(path), array, list(params)):
        raise FacecamError(f"cannot write {path}")


def prepare_person(cfg: PersonPrepareConfig) -> dict[str, int]:
    """Write ``cfg.out`` in the facecam layout (images/, labels/, train.txt, holdout.txt). Returns counts.

    Everything is written to a hidden sibling folder first and renamed into place at the end,
    so a failure leaves nothing behind and a rerun can use the same ``--out``.
    """
    from facecam.realtime.segmenter import Segmenter

    if not Path(cfg.src).is_dir():
        raise FacecamError(f"--src {cfg.src} is not a folder")
    if cfg.out.exists():
        raise FacecamError(f"{cfg.out} already exists; choose a new --out")
    names = read_split(cfg.src, cfg.split)
    if cfg.holdout >= len(names):
        raise FacecamError(f"--holdout {cfg.holdout} leaves no training photos ({len(names)} in {cfg.split})")
    if any("/" in n or "\\" in n for n in names):
        raise FacecamError(f"split {cfg.split} lists a name with a folder in it; names must be plain file stems")
    for name in names:  # every file there before any work, so a gap fails at once, by name
        find_image(cfg.src, name)
        if not (cfg.src / "labels" / f"{name}.png").is_file():
            raise FacecamError(f"person mask {cfg.src / 'labels' / (name + '.png')} is missing")
    staging = cfg.out.with_name(f".{cfg.out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    empty = []
    try:
        with Segmenter(cfg.teacher, provider="cpu") as teacher:
            (staging / "images").mkdir(parents=True)
            (staging / "labels").mkdir()
            for name in names:
                image, person = _shrink(*read_person_pair(cfg.src, name), cfg.max_side)
                if not person.any():
                    empty.append(name)
                label = body_negative_labels(person, teacher_face(teacher, image))
                _write(staging / "images" / f"{name}.jpg", image, (cv2.IMWRITE_JPEG_QUALITY, 95))
                _write(staging / "labels" / f"{name}.png", label)
        if len(empty) == len(names):
            raise FacecamError(f"no person mask in {cfg.src / 'labels'} has a person pixel (>0); wrong folder?")
        order = list(names)
        random.Random(cfg.seed).shuffle(order)
        held, train = order[: cfg.holdout], order[cfg.holdout :]
        (staging / "train.txt").write_text("".join(f"{n}\n" for n in train))
        (staging / "holdout.txt").write_text("".join(f"{n}\n" for n in held))
        staging.rename(cfg.out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"train": len(train), "holdout": len(held), "no_person": len(empty)}

"""Person photos with person masks -> training labels for bodies, arms, rooms and the faces in them.

Face data shows almost no bodies, so a model trained on it paints every skin- or red-toned
thing as face: bare arms, a pink dress, an orange jacket, a red shop front. Person data
(photos + binary person masks, ``../shared/data/person``) shows exactly those, but says
nothing about where the face is. This module labels only what is near-certain:

- outside the person (with a safety ring for the automatic mask's ragged edge): background;
- inside the person, away from every possible head: "not face, class unknown" (254), since a
  body can carry long hair;
- the core of each face a teacher model is confident about, inside its head-and-neck box:
  face. Without these, a model learns "photos like these have no faces" and stops finding
  the faces of people in scenes (measured: it did);
- everything else that could be a head stays ignored (255): the top of each person, the
  rest of each head box, the rim of each teacher face. The box stops at the neck, so where the
  teacher over-paints a dress below the face, the dress becomes a negative.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError
from facecam.training.dataset import LABEL_IGNORE, LABEL_NOT_FACE, FaceSegDataset, read_pair

LABEL_FACE = 1
#: person masks say 0 background and anything above 0 person (1 in ../shared/data/person, 255 elsewhere)
PERSON_MASK_MAP = {value: 1 for value in range(1, 256)}

#: a blob smaller than this share of the image is not used (noise); a person smaller than
#: ``MIN_PERSON_AREA`` gets no top band (its head is a few pixels)
MIN_FACE_AREA = 0.0002
MIN_PERSON_AREA = 0.002
#: teacher face probability above which a pixel may start a head box / may be labelled face
MAYBE_FACE = 0.3
SURE_FACE = 0.7
#: share of a person's height from its top that stays ignored: a whole standing person's head
#: is ~1/8 of their height; a person cut off by the image's bottom edge can be mostly head
TOP_BAND = 0.2
TOP_BAND_CROPPED = 0.35
#: where a face label may go on a person cut off by the bottom edge (a portrait's face can
#: reach below its top third)
FACE_BAND_CROPPED = 0.5


def head_zones(face: np.ndarray, core: bool = False) -> np.ndarray:
    """``(H, W) bool`` teacher face guess -> ``(H, W) bool`` head-and-neck boxes around each blob.

    The head width is the blob's widest row within one bbox width of its top (forehead to
    chin for a frontal face); the box spans 1.25 head widths each side of the head's centre,
    from 0.75 above its top to 2 head widths below it (chin, neck and a margin). With
    ``core`` the box is the head and upper neck only: 0.7 head widths each side, from the
    top to 1.4 head widths below it (where a confident teacher may label face).
    """
    across, above, below = (0.7, 0.0, 1.4) if core else (1.25, 0.75, 2.0)
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
        x0, x1 = max(0, int(centre - across * head_width)), min(w, int(centre + across * head_width) + 1)
        y0, y1 = max(0, int(y - above * head_width)), min(h, int(y + below * head_width) + 1)
        zones[y0:y1, x0:x1] = True
    return zones


def top_bands(person: np.ndarray, share: float = TOP_BAND, cropped_share: float = TOP_BAND_CROPPED) -> np.ndarray:
    """``(H, W) bool`` person mask -> the top ``share`` of each person's bbox (``cropped_share``
    for a person cut off by the image's bottom edge)."""
    h, w = person.shape
    bands = np.zeros((h, w), bool)
    count, _, stats, _ = cv2.connectedComponentsWithStats(person.astype(np.uint8), connectivity=8)
    for i in range(1, count):
        x, y, bw, bh, area = stats[i]
        if area >= MIN_PERSON_AREA * h * w:
            depth = cropped_share if y + bh >= h - 1 else share
            bands[y : y + max(1, int(np.ceil(depth * bh))), x : x + bw] = True
    return bands


def person_photo_labels(person: np.ndarray, face_probability: np.ndarray, wide_probability: np.ndarray) -> np.ndarray:
    """Person mask ``(H, W) bool`` and two teacher face probabilities ``(H, W) float`` -> ``(H, W) uint8`` labels.

    ``face_probability`` is the teacher at its own input size (where it is reliable);
    ``wide_probability`` also looks at twice that size, which finds smaller heads but also
    paints coats and legs, so it only widens the ignored zone. Labels: 0 outside the
    (dilated) person, 254 on the body away from any head, 1 where the teacher is sure
    (eroded) inside the core of a head box (head and upper neck) at the top of a person,
    255 elsewhere. The person mask is the authority on where people are: teacher blobs
    outside it are almost always the teacher's own mistakes (a red shop front, a wall),
    which is what these labels are for.
    """
    h, w = person.shape
    ring = max(2, int(0.015 * np.hypot(h, w)))
    near_person = cv2.dilate(person.astype(np.uint8), np.ones((2 * ring + 1, 2 * ring + 1), np.uint8)) > 0
    zones = head_zones(np.maximum(face_probability, wide_probability) > MAYBE_FACE)
    label = np.full((h, w), LABEL_IGNORE, np.uint8)
    label[~near_person] = 0
    label[person & ~(zones | top_bands(person))] = LABEL_NOT_FACE
    rim = max(1, ring // 2)
    sure = cv2.erode((face_probability > SURE_FACE).astype(np.uint8), np.ones((2 * rim + 1, 2 * rim + 1), np.uint8))
    # faces only where a head can be: the core of a head box, at the top of a person (the
    # teacher's confident blobs on legs and coats of small full-body people are not faces)
    heads_at_top = top_bands(person, TOP_BAND, FACE_BAND_CROPPED) & near_person
    label[(sure > 0) & head_zones(face_probability > MAYBE_FACE, core=True) & heads_at_top] = LABEL_FACE
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


def teacher_probabilities(segmenter, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's face probability at the photo's size: at the model's own input size, and
    the max of that and twice it (when the model accepts any size)."""
    from facecam.realtime import processing

    size = segmenter.inference_size(image_bgr.shape[:2])
    scales = (1, 2) if segmenter.card.dynamic_size else (1,)
    probabilities = []
    for scale in scales:
        tensor = processing.preprocess(image_bgr, (size[0] * scale, size[1] * scale), segmenter.card)
        probability = segmenter.infer(tensor)
        probabilities.append(cv2.resize(probability, image_bgr.shape[1::-1], interpolation=cv2.INTER_LINEAR))
    return probabilities[0], np.maximum.reduce(probabilities)


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

    if cfg.out.exists():
        raise FacecamError(f"{cfg.out} already exists; choose a new --out")
    # the shared loader checks the layout and that every photo and mask is there, by name
    names = FaceSegDataset(cfg.src, cfg.split, label_map=PERSON_MASK_MAP).names
    if cfg.holdout >= len(names):
        raise FacecamError(f"--holdout {cfg.holdout} leaves no training photos ({len(names)} in {cfg.split})")
    if any("/" in n or "\\" in n for n in names):
        raise FacecamError(f"split {cfg.split} lists a name with a folder in it; names must be plain file stems")
    staging = cfg.out.with_name(f".{cfg.out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    empty = []
    try:
        with Segmenter(cfg.teacher, provider="cpu") as teacher:
            (staging / "images").mkdir(parents=True)
            (staging / "labels").mkdir()
            for name in names:
                rgb, mask = read_pair(cfg.src, name, PERSON_MASK_MAP)
                image, person = _shrink(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), mask > 0, cfg.max_side)
                if not person.any():
                    empty.append(name)
                label = person_photo_labels(person, *teacher_probabilities(teacher, image))
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

"""Photos of scenes and groups -> face crops as the runtime cuts them, with labels for what is near-certain.

The runtime segments every face in its own square crop (``CROP_MARGIN`` times the face, see
``facecam.realtime.crops``). A crop around a face in a street or group photo shows what the
face data never does at that scale: a chest, a hand, the shoulder of the next person, a lamp.
The model painted those (measured: 2% of the body pixels of held-out person photos), so these
crops teach it what lies around a face in a scene. Faces come from a teacher detector's boxes
(CenterFace, run offline; never at run time); labels claim only what is near-certain:

- face: the segmenter teacher's sure pixels (probability > ``SURE_FACE``, eroded), looking at
  the crop as the runtime does, inside the face zone of a confident box, and, for skin-labelled
  photos, the labelled skin inside that zone;
- not face (254): below each face's neck and beside its shoulders (``body_zone``), and labelled
  skin away from every possible face (hands, arms, legs), and whatever the source labels already
  call background or not face;
- everything else (hair, the neck, an uncertain rim, a face the detector was unsure of) is ignored.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError
from facecam.realtime.crops import CROP_MARGIN
from facecam.training.dataset import LABEL_IGNORE, LABEL_NOT_FACE, read_pair, read_split

LABEL_FACE = 1
#: a teacher box at or above this score is a face; 0.3 .. this is "maybe a face" (kept ignored)
SURE_BOX = 0.5
#: faces smaller than this (longer side, source pixels) give no crop: too few pixels to label
MIN_FACE_SIDE = 14
#: teacher probability above which a crop pixel is labelled face (then eroded by one pixel)
SURE_FACE = 0.7
#: crops per face, each with its own jitter of size and centre (the runtime's crop wanders too)
CROPS_PER_FACE = 2
#: a crop larger than this (model pixels) is shrunk: training resizes to its input size anyway
MAX_CROP_SIDE = 320


@dataclass(frozen=True)
class CropsConfig:
    """Options of ``facecam-train prepare crops``."""

    src: Path  # a facecam-layout folder: images/, labels/, split lists
    boxes: Path  # teacher boxes: {"NAME": [[x0, y0, x1, y1, score], ...]} in the source photos' pixels
    out: Path
    split: str = "train"  # a split list of src, or a list file elsewhere: the names to use (never held-out ones)
    labels: str = "person"  # "person" (prepare person's labels) or "skin" (0 not skin, 1 skin)
    boxes_size: Path | None = None  # folder of the photos the boxes were measured on, when src was shrunk
    teacher: str = "facecam_face"
    seed: int = 0


def _zone(shape: tuple[int, int], top: float, bottom: float, left: float, right: float) -> np.ndarray:
    """``(H, W) bool``: the rectangle rows ``top:bottom``, columns ``left:right`` (clipped to the image)."""
    zone = np.zeros(shape, bool)
    zone[max(0, int(top)) : max(0, int(bottom)), max(0, int(left)) : max(0, int(right))] = True
    return zone


def face_zone(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W) bool``: where the face of a teacher box can be (the box, a little wider, down to
    the chin and upper neck)."""
    x0, y0, x1, y1 = box[:4]
    w, h = x1 - x0, y1 - y0
    return _zone(shape, y0 - 0.15 * h, y1 + 0.3 * h, x0 - 0.15 * w, x1 + 0.15 * w)


def head_zone(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W) bool``: head, hair, neck and a margin around a teacher box (nothing here is claimed not-face)."""
    x0, y0, x1, y1 = box[:4]
    w, h = x1 - x0, y1 - y0
    return _zone(shape, y0 - 0.8 * h, y1 + 0.75 * h, x0 - 0.6 * w, x1 + 0.6 * w)


def body_zone(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(H, W) bool``: chest and shoulders under a face, from below its neck (0.75 face heights
    under the chin, past the collar on every training face) down to 4 face heights."""
    x0, y0, x1, y1 = box[:4]
    w, h = x1 - x0, y1 - y0
    return _zone(shape, y1 + 0.75 * h, y1 + 4 * h, x0 - 1.5 * w, x1 + 1.5 * w)


def scene_labels(source: np.ndarray, kind: str, boxes: np.ndarray) -> np.ndarray:
    """The photo's labels before any teacher pixel: ``source`` labels (prepare person's, or skin
    0/1) and teacher ``boxes`` ``(N, 5)`` -> ``(H, W) uint8`` with 0, 254 and 255 (and 1 for labelled
    skin inside a confident face zone)."""
    shape = source.shape
    heads = np.zeros(shape, bool)
    for box in boxes:
        heads |= head_zone(box, shape)
    if kind == "skin":
        label = np.full(shape, LABEL_IGNORE, np.uint8)
        label[(source == 1) & ~heads] = LABEL_NOT_FACE  # hands, arms, legs
    else:
        label = source.copy()
    for box in boxes:
        if box[4] >= SURE_BOX:
            label[body_zone(box, shape) & ~heads & (label == LABEL_IGNORE)] = LABEL_NOT_FACE
    for box in boxes:
        zone = face_zone(box, shape)
        label[zone & (label == LABEL_NOT_FACE)] = LABEL_IGNORE  # a body label never reaches into a face
        if box[4] >= SURE_BOX and kind == "skin":
            label[zone & (source == 1)] = LABEL_FACE
    # a face the detector was unsure of may not be called anything
    for box in boxes:
        if box[4] < SURE_BOX:
            label[face_zone(box, shape) & (label != 0)] = LABEL_IGNORE
    return label


def jittered_crops(
    box: np.ndarray, rng: random.Random, count: int = CROPS_PER_FACE
) -> list[tuple[float, float, float]]:
    """``count`` square crops ``(cx, cy, side)`` around a face box, the runtime's margin jittered."""
    x0, y0, x1, y1 = box[:4]
    size = max(x1 - x0, y1 - y0)
    crops = []
    for _ in range(count):
        side = CROP_MARGIN * size * rng.uniform(0.85, 1.3)
        crops.append(
            ((x0 + x1) / 2 + rng.uniform(-0.1, 0.1) * side, (y0 + y1) / 2 + rng.uniform(-0.1, 0.1) * side, side)
        )
    return crops


def cut(image: np.ndarray, label: np.ndarray, crop: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The square crop of a photo and its labels, at the source's resolution (at most
    ``MAX_CROP_SIDE``), the image cut as the runtime cuts it (area-shrunk, edges repeated) and
    the labels nearest-neighbour, ignored past the photo's edge."""
    from facecam.realtime.crops import Crop, crop_pixels

    cx, cy, side = crop
    out = int(min(MAX_CROP_SIDE, max(16, round(side))))
    square = Crop(cx, cy, side)
    pixels = crop_pixels(image, square, out)
    matrix = square.to_crop(out)
    labels = cv2.warpAffine(
        label, matrix, (out, out), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=LABEL_IGNORE
    )
    return pixels, labels


def teacher_face(segmenter, crop_bgr: np.ndarray, side: float) -> np.ndarray:
    """``(S, S) bool``: where the teacher is sure of face when it sees the crop (``side`` source
    pixels) at the size the runtime would give it."""
    from facecam.realtime import processing
    from facecam.realtime.passes import crop_input_side

    side = crop_input_side(side, int(max(segmenter.card.input_size)))
    # the first look's model: the one that segments crops (a finder beside it runs only whole frames)
    probability = segmenter.infer_first_looks(processing.preprocess(crop_bgr, (side, side), segmenter.card))[0]
    probability = cv2.resize(probability, crop_bgr.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    return cv2.erode((probability > SURE_FACE).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def crop_face_zone(box: np.ndarray, crop: tuple[float, float, float], out: int) -> np.ndarray:
    """A box's face zone in the coordinates of a crop ``out`` pixels wide."""
    from facecam.realtime.crops import Crop

    matrix = Crop(*crop).to_crop(out)
    (x0, y0), (x1, y1) = (matrix @ np.array([x, y, 1.0]) for x, y in ((box[0], box[1]), (box[2], box[3])))
    return face_zone(np.array([x0, y0, x1, y1, box[4]]), (out, out))


def _load_boxes(path: Path) -> dict[str, np.ndarray]:
    """Teacher boxes by photo name, each ``(N, 5)`` (see training.teacher_boxes)."""
    from facecam.training.teacher_boxes import read_teacher_boxes

    return {name: np.asarray(entries, np.float64).reshape(-1, 5) for name, entries in read_teacher_boxes(path).items()}


def _photo_size(folder: Path, name: str) -> tuple[int, int]:
    """``(height, width)`` of the photo ``name`` in ``folder`` (the one the boxes were measured on)."""
    found = sorted(folder.glob(f"{name}.*"))
    image = cv2.imread(str(found[0]), cv2.IMREAD_COLOR) if found else None
    if image is None:
        raise FacecamError(f"photo {name!r} is missing or unreadable in {folder} (--boxes-photos)")
    return image.shape[:2]


def prepare_crops(cfg: CropsConfig) -> dict[str, int]:
    """Write ``cfg.out`` in the facecam layout (images/, labels/, train.txt). Returns counts."""
    from facecam.realtime.segmenter import Segmenter

    if cfg.out.exists():
        raise FacecamError(f"{cfg.out} already exists; choose a new --out")
    if cfg.labels not in ("person", "skin"):
        raise FacecamError(f"labels must be person or skin, got {cfg.labels!r}")
    boxes = _load_boxes(cfg.boxes)
    listed = Path(cfg.split)
    names = read_split(listed.parent, listed.stem) if listed.suffix == ".txt" else read_split(cfg.src, cfg.split)
    held = set(read_split(cfg.src, "holdout")) if (cfg.src / "holdout.txt").is_file() else set()
    if held & set(names):
        count = len(held & set(names))
        raise FacecamError(f"{count} of the photos to crop are in {cfg.src / 'holdout.txt'}; never train on those")
    rng = random.Random(cfg.seed)
    staging = cfg.out.with_name(f".{cfg.out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    written: list[str] = []
    try:
        (staging / "images").mkdir(parents=True)
        (staging / "labels").mkdir()
        with Segmenter(cfg.teacher, provider="cpu") as teacher:
            for name in names:
                rgb, source = read_pair(cfg.src, name)
                image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                found = boxes.get(name, np.zeros((0, 5)))
                if cfg.boxes_size is not None and len(found):
                    original_width = _photo_size(cfg.boxes_size, name)[1]
                    found = found * np.array([image.shape[1] / original_width] * 4 + [1.0])
                label = scene_labels(source, cfg.labels, found)
                for index, box in enumerate(found):
                    if box[4] < SURE_BOX or max(box[2] - box[0], box[3] - box[1]) < MIN_FACE_SIDE:
                        continue
                    for number, crop in enumerate(jittered_crops(box, rng)):
                        pixels, crop_label = cut(image, label, crop)
                        sure = teacher_face(teacher, pixels, crop[2]) & crop_face_zone(box, crop, pixels.shape[0])
                        crop_label[sure & (crop_label == LABEL_IGNORE)] = LABEL_FACE
                        stem = f"{name}_f{index}_{number}"
                        cv2.imwrite(str(staging / "images" / f"{stem}.jpg"), pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
                        cv2.imwrite(str(staging / "labels" / f"{stem}.png"), crop_label)
                        written.append(stem)
        if not written:
            raise FacecamError(
                f"no face in {cfg.boxes} reached score {SURE_BOX} and {MIN_FACE_SIDE} px; nothing to write"
            )
        (staging / "train.txt").write_text("".join(f"{n}\n" for n in written))
        staging.rename(cfg.out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"crops": len(written), "photos": len(names)}

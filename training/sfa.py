"""SFA skin masks -> face labels in the facecam layout, with a held-out split.

``../shared/data/sfa-skin`` holds 1,118 studio portraits (frontal to full profile, varied skin
tones and ages) with skin masks: 0 not skin, 1 skin, where face skin, ears and neck are skin
and the eyes, brows and an open mouth are holes. A skin mask is not a face mask, so each is
turned into a face label (:func:`sfa_face_label`):

- face (1): the face's skin region with its holes filled, so eyes, brows, lips, an open mouth
  and a moustache enclosed by skin become face. The face region is the largest skin region,
  except where a beard cuts the neck off the face and the neck region is about as large: of
  the regions at least half the size of the largest, the one highest in the photo is taken;
- everything else (hair, clothes, background, a beard, stray skin specks): 254 "not face,
  class unknown" (it may be hair or background);
- other large skin regions (at least ``BIG_OTHER_SKIN`` of the face's area: a neck cut off by
  a beard, a chest): 255 ignore. Where no beard cuts it off the neck is part of the face
  region and so face, as in LFW Part Labels; teaching "not face" on the same neck when a beard
  is above it would contradict that;
- a thin ring (``RING`` px each side) on the face's outline: 255 ignore, as the mask edge and a
  model's edge at a lower resolution disagree by a pixel or two.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError
from facecam.training.dataset import LABEL_IGNORE, LABEL_NOT_FACE, FaceSegDataset, find_image, read_pair
from facecam.training.splits import holdout_val_train

LABEL_FACE = 1
#: ignore ring on each side of the face outline, in pixels of the photo (SFA: long side 512)
RING = 2
#: radius of the closing that seals an eye or mouth hole opening to the outline through a gap
#: of a pixel or two (a turned head's far eye); small enough to stay inside the ignore ring
CLOSE_RADIUS = 2
#: skin regions at least this share of the largest compete to be the face (the highest wins)
FACE_CANDIDATE = 0.5
#: skin regions apart from the face of at least this share of its area are ignored, smaller are not-face
BIG_OTHER_SKIN = 0.05


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def fill_outline(region: np.ndarray) -> np.ndarray:
    """``(H, W) bool`` -> ``(H, W) bool``: the region with everything inside its outer outlines filled."""
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(region.shape, np.uint8)
    cv2.drawContours(filled, contours, -1, 1, -1)
    return filled > 0


def sfa_face_label(skin: np.ndarray, ring: int = RING) -> np.ndarray:
    """``(H, W) bool`` skin mask -> ``(H, W) uint8`` label map (1 face, 254 not face, 255 ignore).

    See the module docstring for the rule. A mask without skin gives all 254.
    """
    skin = np.asarray(skin, bool)
    label = np.full(skin.shape, LABEL_NOT_FACE, np.uint8)
    count, regions, stats, centroids = cv2.connectedComponentsWithStats(skin.astype(np.uint8), connectivity=8)
    if count < 2:
        return label
    areas = stats[1:, cv2.CC_STAT_AREA]
    candidates = np.nonzero(areas >= FACE_CANDIDATE * areas.max())[0]
    face_index = 1 + int(candidates[np.argmin(centroids[1 + candidates, 1])])
    region = (regions == face_index).astype(np.uint8)
    closed = cv2.morphologyEx(region, cv2.MORPH_CLOSE, _disk(CLOSE_RADIUS)) if CLOSE_RADIUS else region
    face = fill_outline(closed > 0)
    big_other = np.nonzero(areas >= BIG_OTHER_SKIN * areas[face_index - 1])[0] + 1
    label[np.isin(regions, big_other[big_other != face_index]) & ~face] = LABEL_IGNORE
    label[face] = LABEL_FACE
    if ring:
        outline = cv2.dilate(face.astype(np.uint8), _disk(ring)) > cv2.erode(face.astype(np.uint8), _disk(ring))
        label[outline] = LABEL_IGNORE
    return label


@dataclass(frozen=True)
class SfaPrepareConfig:
    """Options of ``facecam-train prepare sfa``."""

    src: Path  # images/NAME.jpg, labels/NAME.png (0 not skin, 1 skin), all.txt
    out: Path
    split: str = "all"  # the source list to convert
    holdout_every: int = 5  # every 5th photo of the sorted list is held out
    val_every: int = 10  # every 10th of the rest is validation
    ring: int = RING


def prepare_sfa(cfg: SfaPrepareConfig) -> dict[str, int]:
    """Write ``cfg.out`` in the facecam layout: images/ (the source files, copied as they are),
    labels/, ``train.txt``, ``val.txt``, ``holdout.txt``, ``all.txt``. Returns the split sizes.

    Every photo is checked first (present, decodable, same size as its mask, mask values 0/1
    only); the first problem stops the run with the file's name. Everything is written to a
    hidden sibling folder and renamed into place at the end, so a failure leaves nothing.
    """
    if cfg.out.exists():
        raise FacecamError(f"{cfg.out} already exists; choose a new --out")
    names = FaceSegDataset(cfg.src, cfg.split).names  # layout and presence of every file, by name
    if any("/" in n or "\\" in n for n in names):
        raise FacecamError(f"split {cfg.split} lists a name with a folder in it; names must be plain file stems")
    if len(set(names)) != len(names):
        raise FacecamError(f"split {cfg.split} of {cfg.src} lists a name twice")
    splits = holdout_val_train(names, cfg.holdout_every, cfg.val_every)
    if not splits["train"] or not splits["val"] or not splits["holdout"]:
        raise FacecamError(f"{len(names)} photos are too few for a train, val and holdout split")
    staging = cfg.out.with_name(f".{cfg.out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "images").mkdir(parents=True)
        (staging / "labels").mkdir()
        for name in splits["all"]:
            _, mask = read_pair(cfg.src, name)  # decodes both, checks sizes
            values = np.unique(mask)
            if not set(values.tolist()) <= {0, 1}:
                raise FacecamError(
                    f"skin mask {cfg.src / 'labels' / (name + '.png')} has value {int(values.max())}; "
                    "SFA masks are 0 not skin, 1 skin"
                )
            image_path = find_image(cfg.src, name)
            shutil.copyfile(image_path, staging / "images" / image_path.name)
            if not cv2.imwrite(str(staging / "labels" / f"{name}.png"), sfa_face_label(mask == 1, cfg.ring)):
                raise FacecamError(f"cannot write {staging / 'labels' / (name + '.png')}")
        for split, items in splits.items():
            (staging / f"{split}.txt").write_text("".join(f"{n}\n" for n in items))
        staging.rename(cfg.out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {split: len(items) for split, items in splits.items()}

"""CelebAMask-HQ -> the facecam data layout (images/, labels/, split lists).

Source layout (the official archive):
    SRC/CelebA-HQ-img/<N>.jpg                                  1024x1024 photos
    SRC/CelebAMask-HQ-mask-anno/<N // 2000>/<NNNNN>_<part>.png  512x512 part masks, one per part present

Labels written: 0 background, 1 face, 2 hair. As the original project did, face is the union
of the face parts (skin, nose, eyes, brows, lips, mouth) with the glasses cut out; hair is
painted after the face (fringes cover the forehead), the cut-out parts last.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError

#: the 18 annotated parts of CelebAMask-HQ (plus background: 19 classes)
PARTS = (
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
FACE_PARTS = ("skin", "nose", "l_eye", "r_eye", "l_brow", "r_brow", "u_lip", "l_lip", "mouth")
HAIR_PARTS = ("hair",)
CUTOUT_PARTS = ("eye_g",)
IMAGES_PER_FOLDER = 2000
_MASK_NAME = re.compile(r"^(\d{5})_([a-z_]+)\.png$")


@dataclass(frozen=True)
class PrepareConfig:
    """Options of ``facecam-train prepare celebamask`` (defaults: the original's face definition)."""

    src: Path
    out: Path
    face_parts: Sequence[str] = FACE_PARTS
    hair_parts: Sequence[str] = HAIR_PARTS
    cutout_parts: Sequence[str] = CUTOUT_PARTS
    size: int = 512  # side of the written images and labels
    limit: int = 0  # use only the first N images (0 = all); the original used 5000
    val_count: int = 0  # images for val.txt (0 = 10 %); the original used 500 of its 5000
    seed: int = 0

    def __post_init__(self) -> None:
        for group in (self.face_parts, self.hair_parts, self.cutout_parts):
            unknown = sorted(set(group) - set(PARTS))
            if unknown:
                raise FacecamError(f"unknown CelebAMask-HQ part(s) {', '.join(unknown)}; valid: {', '.join(PARTS)}")
        if self.size < 16:
            raise FacecamError(f"--size must be >= 16, got {self.size}")


def index_masks(anno_dir: Path) -> dict[int, dict[str, Path]]:
    """``{image id: {part: mask path}}`` from the annotation folders."""
    if not anno_dir.is_dir():
        raise FacecamError(f"{anno_dir} not found: is --src the CelebAMask-HQ folder?")
    index: dict[int, dict[str, Path]] = {}
    for path in anno_dir.glob("*/*.png"):
        match = _MASK_NAME.match(path.name)
        if match and match.group(2) in PARTS:
            index.setdefault(int(match.group(1)), {})[match.group(2)] = path
    return index


def _read_mask(path: Path, size: int) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FacecamError(f"broken mask file {path}")
    if mask.shape[0] != mask.shape[1]:
        raise FacecamError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, CelebAMask-HQ masks are square")
    if mask.shape[0] != size:
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return mask > 127


def compose_label(parts: dict[str, Path], cfg: PrepareConfig) -> np.ndarray:
    """One image's part masks -> ``(size, size) uint8`` label map (0 bg, 1 face, 2 hair)."""
    label = np.zeros((cfg.size, cfg.size), np.uint8)
    for group, value in ((cfg.face_parts, 1), (cfg.hair_parts, 2), (cfg.cutout_parts, 0)):
        for part in group:
            if part in parts:
                label[_read_mask(parts[part], cfg.size)] = value
    return label


def prepare_celebamask(cfg: PrepareConfig, progress: bool = True) -> dict[str, int]:
    """Write ``cfg.out`` in the facecam layout; returns the split sizes.

    Every image needs its photo and at least one face part; a missing or undecodable file
    stops the run with its name (nothing is skipped silently).
    """
    from tqdm import tqdm

    img_dir = cfg.src / "CelebA-HQ-img"
    if not img_dir.is_dir():
        raise FacecamError(f"{img_dir} not found: is --src the CelebAMask-HQ folder?")
    masks = index_masks(cfg.src / "CelebAMask-HQ-mask-anno")
    ids = sorted(int(p.stem) for p in img_dir.glob("*.jpg") if p.stem.isdigit())
    if not ids:
        raise FacecamError(f"no <N>.jpg photos in {img_dir}")
    if cfg.limit:
        ids = ids[: cfg.limit]
    for i in ids:
        if not any(p in masks.get(i, {}) for p in cfg.face_parts):
            expected = cfg.src / "CelebAMask-HQ-mask-anno" / str(i // IMAGES_PER_FOLDER) / f"{i:05d}_skin.png"
            raise FacecamError(f"image {i}.jpg has no face part masks (expected e.g. {expected})")
    (cfg.out / "images").mkdir(parents=True, exist_ok=True)
    (cfg.out / "labels").mkdir(parents=True, exist_ok=True)
    for i in tqdm(ids, desc="celebamask", disable=not progress):
        image = cv2.imread(str(img_dir / f"{i}.jpg"), cv2.IMREAD_COLOR)
        if image is None:
            raise FacecamError(f"broken image file {img_dir / f'{i}.jpg'}")
        if image.shape[0] != image.shape[1]:
            raise FacecamError(
                f"{img_dir / f'{i}.jpg'} is {image.shape[1]}x{image.shape[0]}; CelebA-HQ photos are square"
            )
        image = cv2.resize(image, (cfg.size, cfg.size), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(cfg.out / "images" / f"{i}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(cfg.out / "labels" / f"{i}.png"), compose_label(masks[i], cfg))
    return write_splits(cfg.out, [str(i) for i in ids], cfg.val_count or max(1, len(ids) // 10), cfg.seed)


def write_splits(out: Path, names: list[str], val_count: int, seed: int) -> dict[str, int]:
    """Shuffle ``names`` with ``seed`` and write ``val.txt`` (val_count names), ``train.txt`` and ``all.txt``."""
    if not 0 < val_count < len(names):
        raise FacecamError(f"val count {val_count} must be between 1 and {len(names) - 1} for {len(names)} images")
    order = np.random.default_rng(seed).permutation(len(names))
    val = sorted(names[i] for i in order[:val_count])
    train = sorted(names[i] for i in order[val_count:])
    for split, items in (("train", train), ("val", val), ("all", sorted(names))):
        (out / f"{split}.txt").write_text("".join(n + "\n" for n in items))
    return {"train": len(train), "val": len(val)}

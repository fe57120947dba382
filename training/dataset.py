"""The one data layout every facecam loader reads.

    DIR/images/NAME.jpg|png     photos
    DIR/labels/NAME.png         uint8 label maps, same size: 0 background, 1 face, 2 hair,
                                254 "not face, class unknown" (LABEL_NOT_FACE), 255 ignore
    DIR/<split>.txt             one NAME per line (train.txt, val.txt, test.txt, all.txt ...)

``../shared/data/lfw-parts`` is in this layout as it is; ``facecam-train prepare celebamask``
writes it from CelebAMask-HQ.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError

LABEL_IGNORE = 255
#: classes 0 background, 1 face, 2 hair
NUM_CLASSES = 3
#: a pixel known not to be face whose other class is unknown (MaskedFace-Net's label 0 is
#: background or hair): the loss pushes it away from the face classes only
LABEL_NOT_FACE = 254
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: (image HxWx3 uint8 RGB, label HxW uint8) -> same, augmented
PairTransform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def parse_data_spec(spec: str) -> tuple[Path, dict[int, int]]:
    """``PATH`` or ``PATH:OLD=NEW,OLD=NEW`` -> (folder, label map).

    The map rewrites label values of that folder, for example
    ``../shared/data/maskedface:0=254,2=0`` (its 0 is background-or-hair, its 2 an occluder).
    """
    path, sep, tail = spec.rpartition(":")
    if not sep or not re.fullmatch(r"\d+=\d+(,\d+=\d+)*", tail):
        return Path(spec), {}
    mapping = {}
    for pair in tail.split(","):
        old, new = (int(v) for v in pair.split("="))
        if not (0 <= old <= 255 and 0 <= new <= 255):
            raise FacecamError(f"label map {tail!r}: values must be 0..255")
        mapping[old] = new
    return Path(path), mapping


def split_exists(root: Path, split: str) -> bool:
    """Whether every part of ``split`` (``train`` or ``train+val``) has its list in ``root``."""
    return all((Path(root) / f"{part}.txt").is_file() for part in split.split("+"))


def read_split(root: Path, split: str) -> list[str]:
    """Names listed in ``root/<split>.txt``; ``a+b`` joins several lists (blank lines and #comments skipped)."""
    if "+" in split:
        return [name for part in split.split("+") for name in read_split(root, part)]
    path = Path(root) / f"{split}.txt"
    if not path.is_file():
        found = sorted(p.stem for p in Path(root).glob("*.txt"))
        raise FacecamError(f"no split file {path}; splits here: {', '.join(found) or 'none'}")
    names = [ln.strip() for ln in path.read_text().splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise FacecamError(f"split file {path} lists no images")
    return names


def find_image(root: Path, name: str) -> Path:
    """``root/images/name.<suffix>`` for the first suffix that exists."""
    for suffix in IMAGE_SUFFIXES:
        path = Path(root) / "images" / f"{name}{suffix}"
        if path.is_file():
            return path
    raise FacecamError(f"image for {name!r} not found in {Path(root) / 'images'} (tried {', '.join(IMAGE_SUFFIXES)})")


def read_pair(root: Path, name: str, label_map: Mapping[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one photo and its label map.

    Returns ``(H, W, 3) uint8 RGB`` and ``(H, W) uint8`` labels, with ``label_map`` (old
    value -> new value) applied when given. A missing, unreadable or mismatched file is a
    FacecamError naming it.
    """
    image_path = find_image(root, name)
    label_path = Path(root) / "labels" / f"{name}.png"
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise FacecamError(f"cannot read image {image_path}")
    if not label_path.is_file():
        raise FacecamError(f"label map {label_path} is missing for image {image_path.name}")
    label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2 or label.dtype != np.uint8:
        raise FacecamError(f"label map {label_path} is not a single-channel uint8 PNG")
    if label.shape != image.shape[:2]:
        raise FacecamError(
            f"size mismatch for {name}: image {image.shape[1]}x{image.shape[0]}, "
            f"label {label.shape[1]}x{label.shape[0]}"
        )
    if label_map:
        lut = np.arange(256, dtype=np.uint8)
        for old, new in label_map.items():
            lut[old] = new
        label = lut[label]
    unknown = label[(label >= NUM_CLASSES) & (label < LABEL_NOT_FACE)]
    if unknown.size:
        raise FacecamError(
            f"label map {label_path} has value {int(unknown[0])}; valid: 0 background, 1 face, 2 hair, "
            f"{LABEL_NOT_FACE} not face, {LABEL_IGNORE} ignore (remap with --data PATH:OLD=NEW)"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), label


class FaceSegDataset:
    """A split of a folder in the facecam layout, as a torch-style map dataset.

    ``dataset[i]`` is ``(image, label)`` after ``transform``: image ``(3, S, S) float32``
    normalised with ``mean``/``std`` (RGB, 0..1 scale), label ``(S, S) int64``.
    ``label_map`` remaps label values (for example a set whose occluder class should be
    background). All files are checked up front, so a broken set fails before training.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        transform: PairTransform | None = None,
        mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
        std: tuple[float, float, float] = (0.229, 0.224, 0.225),
        label_map: Mapping[int, int] | None = None,
    ) -> None:
        self.root = Path(root)
        if not (self.root / "images").is_dir() or not (self.root / "labels").is_dir():
            raise FacecamError(f"{self.root} is not a facecam data folder (needs images/, labels/ and split lists)")
        self.names = read_split(self.root, split)
        for name in self.names:  # fail early, by name, rather than mid-epoch
            find_image(self.root, name)
            if not (self.root / "labels" / f"{name}.png").is_file():
                raise FacecamError(f"label map {self.root / 'labels' / (name + '.png')} is missing")
        self.transform = transform
        self.mean = np.asarray(mean, np.float32) * 255
        self.std = np.asarray(std, np.float32) * 255
        self.label_map = dict(label_map or {})

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        import torch

        image, label = read_pair(self.root, self.names[index], self.label_map)
        if self.transform is not None:
            image, label = self.transform(image, label)
        x = (image.astype(np.float32) - self.mean) / self.std
        return torch.from_numpy(x.transpose(2, 0, 1).copy()), torch.from_numpy(label.astype(np.int64))

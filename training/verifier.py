"""The face verifier: a tiny classifier that tells a face crop from a leg, a chest or a lamp.

The full-frame pass proposes every blob the segmenter paints, and at the zoom small faces
need, it paints some skin and textures too (a group photo: ~60 proposals for ~15 faces).
The verifier looks at each proposal's crop (the same square the segmenter gets, at
``VERIFIER_SIZE``) and keeps the faces. It is trained here from photos and an offline
teacher's face boxes (CenterFace, run once with ``../shared/anchors``; never a runtime
dependency): a proposal on a teacher face is a face, one far from every teacher box (even a
doubtful one) is not, anything in between is left out.

Exported like a segmentation model (a model card, normalisation in the graph), with a
``(N, 2, 1, 1)`` output: not face / face.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from facecam.errors import FacecamError
from facecam.model_card import IMAGENET_MEAN, IMAGENET_STD, ModelCard
from facecam.realtime.crops import Box, Crop, crop_pixels, iou

VERIFIER_SIZE = 64
VERIFIER_CLASSES = ("not_face", "face")
#: a teacher box with this score or more is a face; proposals near boxes between LOW and SURE are left out
SURE_SCORE = 0.5
LOW_SCORE = 0.3
#: a proposal is on a teacher face when their IoU is this much, or its centre lies in the box
MATCH_IOU = 0.3


class VerifierNet(nn.Module):
    """Five strided 3x3 convolutions (16-96 channels) and a global average: ~0.1 M parameters."""

    def __init__(self) -> None:
        super().__init__()
        layers, channels = [], 3
        for width in (16, 32, 48, 64, 96):
            layers += [nn.Conv2d(channels, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, len(VERIFIER_CLASSES), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3), keepdim=True))


def proposal_label(proposal: Box, teacher: list[list[float]]) -> int | None:
    """1 on a sure teacher face, 0 away from every teacher box, None (left out) otherwise."""

    def matches(box: list[float]) -> bool:
        b = Box(*box[:4])
        cx, cy = proposal.center
        return iou(proposal, b) >= MATCH_IOU or (b.x0 <= cx <= b.x1 and b.y0 <= cy <= b.y1)

    hits = [box[4] for box in teacher if matches(box)]
    if any(score >= SURE_SCORE for score in hits):
        return 1
    if hits:
        return None
    return 0


def teacher_crops(teacher: list[list[float]], rng: random.Random) -> list[Crop]:
    """Crops around each sure teacher face, jittered in place and size as proposals would be."""
    crops = []
    for x0, y0, x1, y1, score in teacher:
        if score >= SURE_SCORE:
            face = Box(x0, y0, x1, y1)
            crop = Crop.around(face)
            jitter = 0.08 * crop.side
            crops.append(
                Crop(
                    crop.cx + rng.uniform(-jitter, jitter),
                    crop.cy + rng.uniform(-jitter, jitter),
                    crop.side * rng.uniform(0.85, 1.2),
                )
            )
    return crops


@dataclass
class VerifierData:
    crops: np.ndarray  # (N, S, S, 3) uint8 RGB
    labels: np.ndarray  # (N,) int64


def collect(photos: list[Path], boxes: dict, finder, seed: int = 0) -> VerifierData:
    """Proposals of ``finder`` (a FaceFinder) on each photo, labelled by the teacher ``boxes``
    (``{stem: [[x0, y0, x1, y1, score], ...]}``), plus jittered crops of the teacher's faces."""
    rng = random.Random(seed)
    crops, labels = [], []
    for photo in photos:
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            raise FacecamError(f"cannot read {photo}")
        teacher = boxes.get(photo.stem, [])
        samples = [(Crop.around(p), proposal_label(p, teacher)) for p in finder.find(image)]
        samples += [(c, 1) for c in teacher_crops(teacher, rng)]
        for crop, label in samples:
            if label is not None:
                crops.append(cv2.cvtColor(crop_pixels(image, crop, VERIFIER_SIZE), cv2.COLOR_BGR2RGB))
                labels.append(label)
    return VerifierData(np.stack(crops), np.asarray(labels, np.int64))


def grey_crops(crops: np.ndarray) -> np.ndarray:
    """``(N, S, S, 3) uint8 RGB`` crops without their colour (luma on every channel, as
    OpenCV's RGB2GRAY): the data of the grey twin (see realtime.verifier)."""
    if len(crops) == 0:
        return crops
    luma = cv2.cvtColor(crops.reshape(-1, crops.shape[2], 3), cv2.COLOR_RGB2GRAY).reshape(crops.shape[:3])
    return np.repeat(luma[..., None], 3, axis=3)


def _tensor(crops: np.ndarray) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    return (torch.from_numpy(crops).permute(0, 3, 1, 2).float() - mean) / std


def _augmented(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flips, brightness/contrast and a little blur: the light and sharpness of real scenes vary."""
    out = crops.astype(np.float32)
    flip = rng.random(len(out)) < 0.5
    out[flip] = out[flip, :, ::-1]
    gain = rng.uniform(0.6, 1.3, (len(out), 1, 1, 1))
    bias = rng.uniform(-25, 25, (len(out), 1, 1, 1))
    out = np.clip(out * gain + bias, 0, 255)
    for i in np.nonzero(rng.random(len(out)) < 0.3)[0]:
        out[i] = cv2.GaussianBlur(out[i], (0, 0), rng.uniform(0.5, 1.5))
    return out.astype(np.uint8)


def train_verifier(data: VerifierData, epochs: int = 12, batch: int = 64, lr: float = 3e-3, seed: int = 0) -> nn.Module:
    """Train a VerifierNet; positives weighted by twice the class ratio: faces are the rarer class,
    and a face dropped is worse than a patch of skin kept (anonymisation)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = VerifierNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-4)
    batch = min(batch, len(data.labels))  # a small set still trains
    steps = epochs * max(1, len(data.labels) // batch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps)
    positives = max(1, int(data.labels.sum()))
    weight = torch.tensor([1.0, max(1.0, 2 * (len(data.labels) - positives) / positives)])
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(data.labels))
        for start in range(0, len(order) - batch + 1, batch):
            idx = order[start : start + batch]
            x = _tensor(_augmented(data.crops[idx], rng))
            loss = loss_fn(model(x)[:, :, 0, 0], torch.from_numpy(data.labels[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


def face_scores(model: nn.Module, crops: np.ndarray) -> np.ndarray:
    """``(N, S, S, 3) uint8 RGB`` -> ``(N,)`` probability of a face."""
    with torch.no_grad():
        return torch.softmax(model(_tensor(crops))[:, :, 0, 0], 1)[:, 1].numpy()


def verifier_card(dataset: str, epochs: int, metrics: dict[str, float], command: str) -> ModelCard:
    return ModelCard(
        input_size=(VERIFIER_SIZE, VERIFIER_SIZE),
        class_names=VERIFIER_CLASSES,
        face_classes=(1,),
        normalization_in_graph=True,
        dynamic_size=False,
        model_name="facecam_verifier",
        dataset=dataset,
        epochs=epochs,
        metrics=metrics,
        train_command=command,
    )

"""One epoch of training, one pass of evaluation, and the loss they share."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from facecam.face import face_probability, is_face
from facecam.training.dataset import LABEL_IGNORE, LABEL_NOT_FACE
from facecam.training.metrics import face_dice_iou, not_face_painted

#: labelled face at least this many training pixels from anything else is the face's inside:
#: a miss there is a hole (a cheek or the lips), not an uncertain edge
INSIDE_MARGIN = 7


def face_inside(face_true: torch.Tensor, margin: int = INSIDE_MARGIN) -> torch.Tensor:
    """``(N, H, W)`` 0/1 face labels eroded by ``margin`` pixels (a square window).

    Ignored and not-face pixels count as outside, so only the certain middle of a face is
    inside; the image border does not erode (a face cut by the frame keeps its inside there).
    """
    outside = (1 - face_true)[:, None]
    grown = F.max_pool2d(outside, 2 * margin + 1, stride=1, padding=margin)
    return 1 - grown[:, 0]


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, face_classes: tuple[int, ...], hole_weight: float = 0.0
) -> torch.Tensor:
    """Cross-entropy plus a soft Dice loss on the face probability, plus an optional hole term.

    Pixels labelled 255 are ignored. Pixels labelled 254 ("not face", class unknown) score
    the log-probability of all non-face classes together, so they teach "not face" without
    claiming background or hair. The Dice term weighs the face boundary, the figure we
    report, more than plain cross-entropy does on images where background dominates.
    ``hole_weight`` adds that much more cross-entropy on the inside of each labelled face
    (``face_inside``), where a pocket of "not face" is a hole that blur or anonymize leaves
    open, however small its share of the Dice.
    logits ``(N, C, H, W)`` float, target ``(N, H, W)`` int64.
    """
    logp = F.log_softmax(logits.float(), 1)
    ignore = target == LABEL_IGNORE
    not_face = target == LABEL_NOT_FACE
    index = target.masked_fill(ignore | not_face, 0)
    pixel_logp = logp.gather(1, index[:, None])[:, 0]
    others = [c for c in range(logits.shape[1]) if c not in face_classes]
    if others:
        pixel_logp = torch.where(not_face, torch.logsumexp(logp[:, others], 1), pixel_logp)
    valid = (~ignore).float()
    ce = -(pixel_logp * valid).sum() / valid.sum().clamp(min=1)
    face_prob = logp[:, list(face_classes)].exp().sum(1) * valid
    face_true = torch.zeros_like(face_prob)
    for c in face_classes:
        face_true += (target == c).float()
    inter = (face_prob * face_true).sum((1, 2))
    dice = (2 * inter + 1) / (face_prob.sum((1, 2)) + face_true.sum((1, 2)) + 1)
    loss = ce + 0.5 * (1 - dice).mean()
    if hole_weight:
        inside = face_inside(face_true)
        loss = loss + hole_weight * -(pixel_logp * inside).sum() / valid.sum().clamp(min=1)
    return loss


def train_one_epoch(
    model: torch.nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    face_classes: tuple[int, ...],
    progress: bool = True,
    desc: str = "train",
    hole_weight: float = 0.0,
) -> float:
    """Train over ``loader`` once; returns the mean loss. Mixed precision when the scaler is enabled."""
    from tqdm import tqdm

    model.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    for images, labels in bar:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=scaler.is_enabled()):
            logits = model(images)
        loss = segmentation_loss(logits.float(), labels, face_classes, hole_weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += loss.item() * len(images)
        count += len(images)
        bar.set_postfix(loss=f"{total / count:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
    return total / max(count, 1)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    loader,
    device: torch.device,
    face_classes: tuple[int, ...],
    progress: bool = False,
    per_image: bool = False,
) -> dict:
    """Mean loss, per-image face Dice / IoU, and the share of not-face pixels painted as face over ``loader``.

    With ``per_image`` the result also holds ``iou_per_image``, an ``(N,)`` float64 array in
    the loader's order."""
    from tqdm import tqdm

    model.eval()
    losses, dices, ious = [], [], []
    painted = labelled = 0
    for images, labels in tqdm(loader, desc="val", disable=not progress, leave=False, dynamic_ncols=True):
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        losses.append(segmentation_loss(logits.float(), labels, face_classes).item() * len(images))
        # the runtime's definition of face at the model's input size (the full runtime path is
        # ``facecam-train evaluate``'s; this is the quick figure for choosing an epoch)
        face, target = is_face(face_probability(logits.float().cpu().numpy(), face_classes)), labels.cpu().numpy()
        dice, iou = face_dice_iou(face, target, face_classes)
        counts = not_face_painted(face, target, face_classes)
        painted, labelled = painted + counts[0], labelled + counts[1]
        dices.append(dice)
        ious.append(iou)
    n = sum(len(d) for d in dices)
    result = {
        "loss": float(sum(losses) / max(n, 1)),
        "dice": float(np.concatenate(dices).mean()) if n else 0.0,
        "iou": float(np.concatenate(ious).mean()) if n else 0.0,
        "not_face_painted": painted / labelled if labelled else float("nan"),  # nothing labelled: no figure
    }
    if per_image:
        result["iou_per_image"] = np.concatenate(ious) if n else np.zeros(0)
    return result

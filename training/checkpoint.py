"""Checkpoints: the weights together with what is needed to rebuild, evaluate and export them.

A checkpoint is a dict saved with ``torch.save``:
    model_name, model_kwargs, num_classes, state_dict,
    card: {input_size, mean, std, class_names, face_classes},
    config (the training arguments), metrics (of this epoch's validation), epoch, dataset,
    and in ``last.pt`` also optimizer / scheduler / scaler / history for ``--resume``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from facecam.errors import FacecamError
from facecam.training.models import MODELS, build_model

REQUIRED_KEYS = ("model_name", "num_classes", "state_dict", "card")


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write atomically (temporary file, then rename), so an interrupted save never leaves half a file.

    A write that fails (a full disk, a folder in the way) is a FacecamError naming the file,
    not a bug report, and leaves no temporary file behind.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)  # a full disk is a RuntimeError from torch's zip writer
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        if tmp.is_file():
            tmp.unlink()
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise FacecamError(f"cannot write checkpoint {path} ({reason})") from exc


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a facecam checkpoint on the CPU; anything else is a clear FacecamError."""
    path = Path(path)
    if not path.is_file():
        raise FacecamError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a bad file
        raise FacecamError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); is it a facecam .pt file?"
        ) from exc
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise FacecamError(f"{path} is not a facecam checkpoint (needs {', '.join(REQUIRED_KEYS)})")
    if payload["model_name"] not in MODELS:
        raise FacecamError(f"{path}: model {payload['model_name']!r} is not one of {', '.join(MODELS)}")
    return payload


def model_from_checkpoint(payload: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    model = build_model(payload["model_name"], payload["num_classes"], **payload.get("model_kwargs", {}))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise FacecamError(
            f"checkpoint weights do not fit model {payload['model_name']!r}: {str(exc).splitlines()[0]}"
        ) from exc
    return model.eval()


def blend_checkpoints(base: dict[str, Any], tuned: dict[str, Any], alpha: float) -> dict[str, Any]:
    """``(1 - alpha) * base + alpha * tuned``, weight by weight (WiSE-FT, Wortsman et al., CVPR 2022).

    For a model and its own fine-tuned version, the blend keeps most of what the fine-tuning
    added and gives back some of what it took away. Floating-point tensors (BatchNorm running
    statistics included) are blended; integer ones (BatchNorm's batch counter) come from
    ``tuned``, as do the card, config, dataset and epoch. Metrics are not carried over: they
    belong to neither parent.
    """
    if not 0 <= alpha <= 1:
        raise FacecamError(f"blend: alpha must be within 0..1, got {alpha}")
    if base["model_name"] != tuned["model_name"] or base.get("model_kwargs") != tuned.get("model_kwargs"):
        raise FacecamError(
            f"blend: {base['model_name']} {base.get('model_kwargs') or ''} and "
            f"{tuned['model_name']} {tuned.get('model_kwargs') or ''} are different architectures"
        )
    if base["state_dict"].keys() != tuned["state_dict"].keys() or any(
        base["state_dict"][k].shape != v.shape for k, v in tuned["state_dict"].items()
    ):
        raise FacecamError("blend: the two checkpoints' weights do not match")
    state = {
        name: (1 - alpha) * base["state_dict"][name] + alpha * value if value.is_floating_point() else value
        for name, value in tuned["state_dict"].items()
    }
    keep = ("model_name", "model_kwargs", "num_classes", "card", "config", "dataset", "epoch")
    return {**{k: tuned[k] for k in keep if k in tuned}, "state_dict": state, "blend_alpha": alpha}

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
    """Write atomically (temporary file, then rename), so an interrupted save never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


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

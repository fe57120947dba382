"""Checkpoints: the weights together with what is needed to rebuild, evaluate and export them.

A checkpoint is a dict saved with ``torch.save``:
    model_name, model_kwargs, num_classes, state_dict,
    card: {input_size, mean, std, class_names, face_classes},
    config (the training arguments), metrics (of this epoch's validation), epoch, dataset,
    and in ``last.pt`` also optimizer / scheduler / scaler / history for ``--resume``.
"""

from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from facecam.errors import FacecamError
from facecam.model_card import ModelCard
from facecam.training.models import MODELS, build_model

REQUIRED_KEYS = ("model_name", "num_classes", "state_dict", "card")
#: what a checkpoint may hold besides tensors: plain values only, so that reading one runs no code
PLAIN_TYPES = (dict, list, tuple, str, int, float, bool, type(None))
#: the largest number a checkpoint's model_kwargs may hold (widths are 16-64): a crafted
#: width of 200,000 would ask for hundreds of GB before anything could refuse it
MAX_MODEL_ARGUMENT = 1024


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write atomically (temporary file, then rename), so an interrupted save never leaves half a file.

    The payload must hold only tensors and plain values (see :func:`plain_problem`): what is
    written can then be read back with ``weights_only=True``. A write that fails (a full disk,
    a folder in the way) is a FacecamError naming the file, not a bug report, and leaves no
    temporary file behind.
    """
    path = Path(path)
    problem = plain_problem(payload)
    if problem:
        raise FacecamError(f"cannot write checkpoint {path}: {problem}")
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)  # a full disk is a RuntimeError from torch's zip writer
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        if tmp.is_file():
            tmp.unlink()
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise FacecamError(f"cannot write checkpoint {path} ({reason})") from exc


def plain_problem(value: Any, where: str = "checkpoint") -> str | None:
    """Where ``value`` holds something other than tensors and plain values, and what; None if nothing."""
    if isinstance(value, torch.Tensor) or type(value) in PLAIN_TYPES and not isinstance(value, (dict, list, tuple)):
        return None
    if type(value) in (dict, OrderedDict):  # a state_dict is an OrderedDict
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                return f"{where} has a key of type {type(key).__name__}"
            problem = plain_problem(item, f"{where}.{key}")
            if problem:
                return problem
        return None
    if type(value) in (list, tuple):
        return next((p for i, item in enumerate(value) if (p := plain_problem(item, f"{where}[{i}]"))), None)
    return f"{where} is a {type(value).__name__}, not a tensor or a plain value"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a facecam checkpoint on the CPU; anything else is a clear FacecamError.

    Read with ``weights_only=True``: a file that needs more than tensors and plain values to
    be rebuilt (a crafted pickle that would run code, or a checkpoint of another program) is
    refused before any of it is built. Every checkpoint facecam has written loads this way.
    """
    path = Path(path)
    if not path.is_file():
        raise FacecamError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:  # junk bytes: not a pickle of anything
            raise FacecamError(
                f"checkpoint {path} cannot be read (UnpicklingError); is it a facecam .pt file?"
            ) from exc
        raise FacecamError(
            f"checkpoint {path} holds {found[1]}, not only tensors and plain values; facecam does not load it "
            "(unpickling it could run code), and facecam's own checkpoints never hold such objects"
        ) from exc
    except Exception as exc:  # torch raises many types for a bad file
        raise FacecamError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}); is it a facecam .pt file?"
        ) from exc
    problem = checkpoint_problem(payload)
    if problem:
        raise FacecamError(f"{path} is not a facecam checkpoint ({problem})")
    return payload


def checkpoint_problem(payload: Any) -> str | None:
    """What makes ``payload`` unusable as a facecam checkpoint; None when it is one."""
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        return f"needs {', '.join(REQUIRED_KEYS)}"
    if payload["model_name"] not in MODELS:
        return f"model {payload['model_name']!r} is not one of {', '.join(MODELS)}"
    if type(payload["num_classes"]) is not int or not 1 <= payload["num_classes"] <= 64:
        return "num_classes must be a whole number within 1..64"
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "state_dict must map names to tensors"
    kwargs = payload.get("model_kwargs", {})
    if not isinstance(kwargs, dict) or any(type(v) not in (int, float, bool, str) for v in kwargs.values()):
        return "model_kwargs must map names to plain numbers or texts"
    if any(type(v) in (int, float) and not 0 <= v <= MAX_MODEL_ARGUMENT for v in kwargs.values()):
        return f"model_kwargs numbers must be within 0..{MAX_MODEL_ARGUMENT} (a width, a count)"
    return card_problem(payload["card"], payload["num_classes"])


def card_problem(card: Any, num_classes: int) -> str | None:
    """What is wrong with a checkpoint's card (the model card's preprocessing and classes); None if nothing."""
    keys = ("input_size", "mean", "std", "class_names", "face_classes")
    if not isinstance(card, dict) or any(not isinstance(card.get(k), (list, tuple)) for k in keys):
        return f"card must be a dict with the lists {', '.join(keys)}"
    try:
        checked = ModelCard(**{k: tuple(card[k]) for k in keys})
    except FacecamError as exc:
        return str(exc)
    if len(checked.class_names) != num_classes:
        return f"card names {len(checked.class_names)} classes, the model has {num_classes}"
    return None


def model_from_checkpoint(payload: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    try:
        model = build_model(payload["model_name"], payload["num_classes"], **payload.get("model_kwargs", {}))
    except (TypeError, ValueError, RuntimeError) as exc:  # an argument the architecture does not take
        raise FacecamError(f"checkpoint model_kwargs do not fit model {payload['model_name']!r}: {exc}") from exc
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

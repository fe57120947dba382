"""The training run: data, model, AdamW with warm-up + cosine, validation, checkpoints, logs.

Runs single-process, or multi-process under ``torchrun`` (DistributedDataParallel on NCCL
with CUDA, gloo on the CPU). Only rank 0 validates and writes files.
"""

from __future__ import annotations

import csv
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, DataLoader

from facecam.errors import FacecamError
from facecam.model_card import DEFAULT_CLASS_NAMES, IMAGENET_MEAN, IMAGENET_STD
from facecam.training.augment import AugmentConfig, build_eval_transform, build_train_transform
from facecam.training.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from facecam.training.dataset import FaceSegDataset, parse_data_spec, split_exists
from facecam.training.engine import evaluate, train_one_epoch
from facecam.training.models import build_model

FACE_CLASSES = (1,)
LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "val_dice", "val_iou", "lr", "seconds")


@dataclass
class TrainConfig:
    """Arguments of one training run (defaults are those of ``facecam-train --help``)."""

    data: list[str]  # folders, each optionally with a label map: PATH:OLD=NEW,...
    out: str
    model: str = "lraspp_mobilenet_v3_large"
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"width": 24} for fast_unet
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    size: int = 256
    train_split: str = "train"
    val_split: str = "val"
    device: str = "auto"
    workers: int = 2
    threads: int = 0  # torch CPU threads, 0 = torch's default
    seed: int = 0
    resume: bool = False
    init: str = ""  # checkpoint whose weights start the run (fine-tuning); a fresh schedule
    warmup_epochs: float = 0.5
    hole_weight: float = 0.0  # extra loss on the inside of labelled faces (engine.face_inside)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    command: str = ""


def pick_device(name: str) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; an unusable explicit choice is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacecamError("--device cuda asked, but torch sees no CUDA GPU here; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise FacecamError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device(name)


def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment, (0, 0, 1) without it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _lr_lambda(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def check_resumable(state: dict, cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a run with settings that would not fit or would silently change it."""
    if state["model_name"] != cfg.model:
        raise FacecamError(f"--resume: {path} is a {state['model_name']} run, not {cfg.model}")
    old = state.get("config", {})
    for key in ("model_kwargs", "size", "batch_size", "lr", "hole_weight"):  # more --epochs may extend a run
        if key in old and old[key] != getattr(cfg, key):
            raise FacecamError(
                f"--resume: {path} was trained with {key}={old[key]}, not {getattr(cfg, key)}; "
                f"use the same value (or a new --out)"
            )


def initial_weights(cfg: TrainConfig) -> dict:
    """The state dict of ``cfg.init``, refused when it is another architecture or does not fit."""
    path = Path(cfg.init)
    state = load_checkpoint(path)
    if state["model_name"] != cfg.model:
        raise FacecamError(f"--init: {path} holds a {state['model_name']} model, not {cfg.model}")
    if state["num_classes"] != len(DEFAULT_CLASS_NAMES):
        raise FacecamError(
            f"--init: {path} predicts {state['num_classes']} classes, training uses {len(DEFAULT_CLASS_NAMES)}"
        )
    try:  # a width given explicitly or left at the default: the weights decide whether they fit
        model_from_checkpoint({**state, "model_kwargs": cfg.model_kwargs})
    except FacecamError as exc:
        raise FacecamError(f"--init: {path}: {exc}") from exc
    return state["state_dict"]


def _datasets(cfg: TrainConfig, rank: int = 0) -> tuple[ConcatDataset, ConcatDataset]:
    """Training sets from every folder; validation from the folders that have the val split."""
    # each rank its own augmentation stream (workers reseed themselves; this covers --workers 0)
    train_tf = build_train_transform(AugmentConfig(**{**asdict(cfg.augment), "size": cfg.size}), seed=cfg.seed + rank)
    eval_tf = build_eval_transform(cfg.size)
    specs = [parse_data_spec(d) for d in cfg.data]
    train = ConcatDataset([FaceSegDataset(p, cfg.train_split, train_tf, label_map=m) for p, m in specs])
    with_val = [(p, m) for p, m in specs if split_exists(p, cfg.val_split)]
    if not with_val:
        raise FacecamError(f"no --data folder has a {cfg.val_split!r} split for validation")
    val = ConcatDataset([FaceSegDataset(p, cfg.val_split, eval_tf, label_map=m) for p, m in with_val])
    return train, val


def _seed_worker(worker_id: int) -> None:
    """Give each DataLoader worker its own augmentation stream (forked copies would repeat it)."""
    info = torch.utils.data.get_worker_info()
    for ds in info.dataset.datasets:
        if hasattr(ds.transform, "reseed"):
            ds.transform.reseed(info.seed % 2**32)


def write_log(run: Path, history: list[dict[str, float]]) -> None:
    """``log.csv`` and ``curves.png`` (loss, Dice and IoU per epoch) in the run folder."""
    with open(run / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, LOG_COLUMNS)
        writer.writeheader()
        writer.writerows({k: row[k] for k in LOG_COLUMNS} for row in history)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r["train_loss"] for r in history], "o-", label="train loss")
    ax1.plot(epochs, [r["val_loss"] for r in history], "o-", label="val loss")
    ax1.set_xlabel("epoch")
    ax1.legend()
    ax2.plot(epochs, [r["val_dice"] for r in history], "o-", label="val face Dice")
    ax2.plot(epochs, [r["val_iou"] for r in history], "o-", label="val face IoU")
    ax2.set_xlabel("epoch")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(run / "curves.png", dpi=80)
    plt.close(fig)


def train(cfg: TrainConfig) -> dict[str, float]:
    """Run the training described by ``cfg``; returns the best validation metrics.

    Writes ``RUN/best.pt`` (best val IoU), ``RUN/last.pt`` (for ``--resume``), ``RUN/log.csv``
    and ``RUN/curves.png``.
    """
    rank, local_rank, world = _distributed()
    device = pick_device(cfg.device)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    initial = initial_weights(cfg) if cfg.init and not cfg.resume else None  # checked before anything is written
    run = Path(cfg.out)
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
    try:
        return _train(cfg, run, device, rank, world, initial)
    except RuntimeError as exc:
        if world > 1 and _peer_gone(exc):
            raise FacecamError(f"rank {rank}: another process of this run stopped; its error is above") from exc
        raise
    finally:
        if world > 1:
            torch.distributed.destroy_process_group()


def _peer_gone(exc: RuntimeError) -> bool:
    """A collective failed because another rank exited (gloo says so only in its message)."""
    return isinstance(exc, torch.distributed.DistError) or "closed by peer" in str(exc)


def _train(
    cfg: TrainConfig, run: Path, device: torch.device, rank: int, world: int, initial: dict | None = None
) -> dict[str, float]:
    train_set, val_set = _datasets(cfg, rank)
    sampler = torch.utils.data.DistributedSampler(train_set, seed=cfg.seed) if world > 1 else None
    loader_kw = dict(num_workers=cfg.workers, pin_memory=device.type == "cuda", persistent_workers=cfg.workers > 0)
    train_loader = DataLoader(
        train_set,
        cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=len(train_set) > cfg.batch_size,
        worker_init_fn=_seed_worker,
        **loader_kw,
    )
    val_loader = DataLoader(val_set, cfg.batch_size, shuffle=False, **loader_kw)

    model = build_model(cfg.model, len(DEFAULT_CLASS_NAMES), **cfg.model_kwargs).to(device)
    if world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda" else model
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    bare = model.module if world > 1 else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(steps, max(1, int(cfg.warmup_epochs * len(train_loader))))
    )
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")

    history: list[dict[str, float]] = []
    best: dict[str, float] = {"iou": -1.0}
    start = 0
    if initial is not None:
        bare.load_state_dict(initial)
        if rank == 0:
            print(f"starting from the weights of {cfg.init}", file=sys.stderr)
    if cfg.resume:
        state = load_checkpoint(run / "last.pt")
        check_resumable(state, cfg, run / "last.pt")
        bare.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler.is_enabled() and state.get("scaler"):  # a CPU run has no scaler state to resume
            scaler.load_state_dict(state["scaler"])
        history, best, start = state["history"], state["best"], state["epoch"]
        if rank == 0:
            print(f"resuming {run} after epoch {start}", file=sys.stderr)

    dataset_desc = ", ".join(f"{d} ({cfg.train_split}/{cfg.val_split})" for d in cfg.data)
    for epoch in range(start + 1, cfg.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        train_loss = train_one_epoch(
            model,
            train_loader,
            optimizer,
            scheduler,
            scaler,
            device,
            FACE_CLASSES,
            progress=rank == 0 and sys.stderr.isatty(),
            desc=f"epoch {epoch}/{cfg.epochs}",
            hole_weight=cfg.hole_weight,
        )
        seconds = time.perf_counter() - t0
        if rank == 0:
            val = evaluate(bare, val_loader, device, FACE_CLASSES)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val["loss"],
                "val_dice": val["dice"],
                "val_iou": val["iou"],
                "lr": scheduler.get_last_lr()[0],
                "seconds": seconds,
            }
            history.append(row)
            print(
                f"epoch {epoch}/{cfg.epochs}  train loss {train_loss:.4f}  val loss {val['loss']:.4f}  "
                f"face Dice {val['dice']:.4f}  IoU {val['iou']:.4f}  ({seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            payload = {
                "model_name": cfg.model,
                "model_kwargs": cfg.model_kwargs,
                "num_classes": len(DEFAULT_CLASS_NAMES),
                "state_dict": bare.state_dict(),
                "card": {
                    "input_size": [cfg.size, cfg.size],
                    "mean": list(IMAGENET_MEAN),
                    "std": list(IMAGENET_STD),
                    "class_names": list(DEFAULT_CLASS_NAMES),
                    "face_classes": list(FACE_CLASSES),
                },
                "config": asdict(cfg),
                "metrics": {"val_" + k: v for k, v in val.items()},
                "epoch": epoch,
                "dataset": dataset_desc,
            }
            if val["iou"] > best["iou"]:
                best = val
                save_checkpoint(payload, run / "best.pt")
            save_checkpoint(
                {
                    **payload,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "history": history,
                    "best": best,
                },
                run / "last.pt",
            )
            write_log(run, history)
        if world > 1:
            torch.distributed.barrier()
    return best


def command_line() -> str:
    """The command that started this process, for the checkpoint and the model card."""
    return " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])

"""``facecam-train``: train a model, prepare CelebAMask-HQ, evaluate a checkpoint.

facecam-train --data DIR --model NAME --epochs N --batch-size B --lr LR --size S --out RUN
facecam-train prepare celebamask --src DIR --out DIR
facecam-train prepare person --src DIR --out DIR
facecam-train prepare sfa --src ../shared/data/sfa-skin --out DIR
facecam-train prepare crops --src DIR --boxes BOXES.json --split LIST --out DIR
facecam-train prepare negatives --src DIR --out DIR
facecam-train recover --model weights/facecam_face_finder.onnx --data DIR --out shipped.pt
facecam-train evaluate --checkpoint RUN/best.pt --data DIR --split test [--light all]
facecam-train evaluate --model facecam_face --data DIR --split test [--light all]
facecam-train blend --base A.pt --tuned B.pt --alpha 0.7 --out C.pt --data DIR
facecam-train verifier --photos DIR BOXES.json HOLDOUT --out weights/facecam_verifier.onnx
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from facecam.cli_args import (
    OneLineErrorParser,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_float,
)
from facecam.errors import FacecamError, cli_entry


def train_parser() -> OneLineErrorParser:
    from facecam.training.models import MODELS

    p = OneLineErrorParser(
        prog="facecam-train",
        description="Train a face segmentation model. Other commands: 'facecam-train prepare celebamask -h', "
        "'facecam-train evaluate -h', 'facecam-train blend -h'.",
    )
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        help="data folder(s) in the facecam layout (images/, labels/, split lists), each optionally "
        "with a label map, e.g. ../shared/data/maskedface:0=254,2=0 (254 = not face, class unknown)",
    )
    p.add_argument("--out", required=True, type=Path, help="run folder for checkpoints, log.csv and curves.png")
    p.add_argument("--model", default="lraspp_mobilenet_v3_large", choices=list(MODELS), help="architecture")
    p.add_argument("--width", type=positive_int, default=0, help="fast_unet base width (0 = its default, 16)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--lr", type=positive_float, default=1e-3, help="peak AdamW learning rate (warm-up, then cosine)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--size", type=positive_int, default=256, help="square training input size in pixels")
    p.add_argument("--train-split", default="train", help="split list(s) to train on; a+b joins lists")
    p.add_argument("--val-split", default="val")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader worker processes")
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue RUN/last.pt where it stopped")
    p.add_argument("--init", type=Path, help="start from this checkpoint's weights (fine-tuning; same model and width)")
    p.add_argument(
        "--hole-weight",
        type=non_negative_float,
        default=0.0,
        help="extra cross-entropy on the inside of each labelled face, where a miss is a hole (0 = off)",
    )
    aug = p.add_argument_group("augmentation")
    aug.add_argument("--color-jitter", type=unit_float, default=0.3, help="ColorJitter strength (0 = off)")
    aug.add_argument("--coarse-dropout", type=unit_float, default=0.5, help="CoarseDropout probability")
    aug.add_argument("--scale-rotate", type=unit_float, default=0.7, help="scale/rotate/shift probability")
    aug.add_argument(
        "--webcam-framing",
        type=unit_float,
        default=0.4,
        help="probability of a smaller, shifted face on a new background",
    )
    aug.add_argument("--blur-noise", type=unit_float, default=0.3, help="motion blur / noise / JPEG probability")
    aug.add_argument(
        "--skin-distractors",
        type=unit_float,
        default=0.0,
        help="probability of hand/arm-like patches of the face's own skin, labelled not-face",
    )
    aug.add_argument(
        "--distractors-off-face",
        action="store_true",
        help="the skin patches only where they do not touch the face (none over a cheek or the lips)",
    )
    aug.add_argument(
        "--lighting", type=unit_float, default=0.0, help="probability of a gamma change or a grey frame (0 = off)"
    )
    aug.add_argument(
        "--hard-light",
        type=unit_float,
        default=0.0,
        help="probability of a dim noisy room, a warm/cold lamp or light from one side (0 = off)",
    )
    aug.add_argument(
        "--backlight",
        type=unit_float,
        default=0.0,
        help="probability of a bright light behind the subject at a random strength (0 = off)",
    )
    aug.add_argument(
        "--low-res",
        type=unit_float,
        default=0.0,
        help="probability of the picture at 1/5-1/2 of its resolution, enlarged back, as a small face's crop is; "
        "the label stays sharp (0 = off)",
    )
    aug.add_argument("--no-hflip", action="store_true", help="disable horizontal flips")
    return p


def evaluate_parser() -> OneLineErrorParser:
    from facecam.training.light import LIGHT_CHOICES

    p = OneLineErrorParser(
        prog="facecam-train evaluate",
        description="Face Dice and IoU (mean, 10th percentile, share of photos under 0.80) of a checkpoint or an "
        "exported model on a split, in the photos' own light or darkened copies of them. Each photo takes the "
        "runtime's path (facecam --images --mode mask) and face is the mask at or above one half: the one "
        "definition of face the runtime paints.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, help="a training checkpoint (run in torch, on the runtime's path)")
    which.add_argument("--model", help="an exported .onnx, or a model name in weights/")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="test")
    p.add_argument(
        "--light",
        default="none",
        choices=LIGHT_CHOICES,
        help="darken each photo first (deterministic; see facecam.training.light.darken): dim, very_dim, backlit; "
        "all = the photos as they are and each darkened setting, one entry each under by_light",
    )
    p.add_argument(
        "--verifier",
        default="facecam_verifier",
        help="the face verifier the runtime uses (as facecam --verifier; none: keep every proposal)",
    )
    p.add_argument(
        "--teacher-boxes",
        type=Path,
        metavar="BOXES.json",
        help="an offline face finder's boxes per photo (stem -> [[x0, y0, x1, y1, score], ...], as "
        "../shared/anchors/centerface_boxes.py writes): also report IoU with the faces it found that the labels "
        "call background left out, and the share of the not-face painted on them",
    )
    p.add_argument("--device", default="auto", help="--checkpoint: auto, cpu, cuda or cuda:N")
    p.add_argument("--provider", default="cpu", help="--model: onnxruntime provider (auto, cpu, cuda, tensorrt)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="--model: onnxruntime threads (0 = its default)")
    return p


def blend_parser() -> OneLineErrorParser:
    p = OneLineErrorParser(
        prog="facecam-train blend",
        description="Blend a model with its fine-tuned version, weight by weight (WiSE-FT), and validate the blend.",
    )
    p.add_argument("--base", required=True, type=Path, help="checkpoint the fine-tuning started from")
    p.add_argument("--tuned", required=True, type=Path, help="the fine-tuned checkpoint")
    p.add_argument("--alpha", required=True, type=unit_float, help="share of the tuned weights (0..1)")
    p.add_argument("--out", required=True, type=Path, help="blended checkpoint to write (must not exist)")
    p.add_argument("--data", required=True, type=Path, help="data folder whose validation split scores the blend")
    p.add_argument("--split", default="val")
    p.add_argument("--device", default="auto")
    return p


def _evaluate_checkpoint(ckpt: dict, data: Path, split: str, device_name: str):
    """The quick validation figures of a loaded checkpoint on a split (the training log's: the
    runtime's definition of face, at the checkpoint's square input size), and the image count."""
    from torch.utils.data import DataLoader

    from facecam.training.augment import build_eval_transform
    from facecam.training.checkpoint import model_from_checkpoint
    from facecam.training.dataset import FaceSegDataset
    from facecam.training.engine import evaluate
    from facecam.training.train import pick_device

    card = ckpt["card"]
    device = pick_device(device_name)
    dataset = FaceSegDataset(data, split, build_eval_transform(card["input_size"][0]), card["mean"], card["std"])
    model = model_from_checkpoint(ckpt).to(device)
    metrics = evaluate(model, DataLoader(dataset, 8), device, tuple(card["face_classes"]), sys.stderr.isatty())
    return metrics, len(dataset)


def run_blend(argv: list[str]) -> int:
    from facecam.training.checkpoint import blend_checkpoints, load_checkpoint, save_checkpoint
    from facecam.training.train import command_line

    a = blend_parser().parse_args(argv)
    if a.out.exists():
        raise FacecamError(f"{a.out} already exists; choose another --out")
    blended = blend_checkpoints(load_checkpoint(a.base), load_checkpoint(a.tuned), a.alpha)
    metrics, _ = _evaluate_checkpoint(blended, a.data, a.split, a.device)
    blended["metrics"] = {f"val_{k}": v for k, v in metrics.items()}
    blended["config"] = {
        **blended.get("config", {}),
        "command": command_line(),
        "tuned_command": blended.get("config", {}).get("command", ""),
    }
    save_checkpoint(blended, a.out)
    print(
        f"wrote {a.out}: {1 - a.alpha:g} x {a.base} + {a.alpha:g} x {a.tuned}; {a.split} face Dice "
        f"{metrics['dice']:.4f}  IoU {metrics['iou']:.4f}"
    )
    return 0


def _figures(metrics: dict) -> dict:
    """The JSON figures of one evaluation: Dice, IoU and its distribution, loss, not-face painted."""
    from facecam.training.metrics import iou_distribution

    spread = iou_distribution(metrics["iou_per_image"])
    figures = {
        "face_dice": round(metrics["dice"], 4),
        "face_iou": round(metrics["iou"], 4),
        "face_iou_p10": round(spread["p10"], 4),
        "share_iou_under_0.80": round(spread["share_under_0.80"], 4),
    }
    if "iou_labelled_face_only" in metrics:  # the runtime's path: other people's faces left out
        figures["face_iou_labelled_face_only"] = round(metrics["iou_labelled_face_only"], 4)
    if "iou_other_faces_ignored" in metrics:  # --teacher-boxes
        figures["teacher_photos"] = metrics["teacher_photos"]
        figures["face_iou_other_faces_ignored"] = round(metrics["iou_other_faces_ignored"], 4)
        figures["not_face_painted_share_on_other_faces"] = round(metrics["not_face_painted_on_other_faces"], 4)
    if "loss" in metrics:
        figures["loss"] = round(metrics["loss"], 4)
    painted = metrics["not_face_painted"]
    figures["not_face_painted"] = None if math.isnan(painted) else round(painted, 4)
    return figures


def run_evaluate(argv: list[str]) -> int:
    from facecam.training.light import lights_for
    from facecam.training.runtime_eval import evaluate_runtime

    a = evaluate_parser().parse_args(argv)
    lights = lights_for(a.light)
    teacher = None
    if a.teacher_boxes is not None:
        from facecam.training.teacher_boxes import read_teacher_boxes

        teacher = read_teacher_boxes(a.teacher_boxes)
    results = {}
    if a.checkpoint is not None:
        from facecam.training.checkpoint import load_checkpoint
        from facecam.training.runtime_eval import TorchSegmenter

        segmenter = TorchSegmenter(load_checkpoint(a.checkpoint), a.device)
        head = {"checkpoint": str(a.checkpoint)}
    else:
        from facecam.realtime.segmenter import Segmenter

        segmenter = Segmenter(a.model, provider=a.provider, threads=a.threads)
        head = {"model": str(segmenter.path)}
        if segmenter.finder is not None:  # it found the faces: the figures are the pair's
            head["finder"] = str(segmenter.finder.path)
    head.update(split=a.split, path="the runtime's (facecam --images --mode mask), face = mask >= 0.5")
    try:
        for light in lights:
            metrics = evaluate_runtime(segmenter, a.data, a.split, light, verifier=a.verifier, teacher=teacher)
            images = metrics["images"]
            results[light] = _figures(metrics)
    finally:
        segmenter.close()
    head["images"] = images
    if a.light == "all":
        print(json.dumps({**head, "light": "all", "by_light": results}))
    else:
        print(json.dumps({**head, "light": a.light, **results[a.light]}))
    return 0


def run_train(argv: list[str]) -> int:
    from facecam.training.augment import AugmentConfig
    from facecam.training.train import TrainConfig, command_line, train

    a = train_parser().parse_args(argv)
    if a.init and a.resume:
        raise FacecamError("--init starts a new run and --resume continues one; pass only one")
    if a.init and not a.init.is_file():
        raise FacecamError(f"--init: {a.init} is not a checkpoint file")
    if a.resume and not (a.out / "last.pt").is_file():
        raise FacecamError(f"--resume: {a.out / 'last.pt'} does not exist")
    if not a.resume and (a.out / "last.pt").exists():
        raise FacecamError(f"{a.out} already holds a run; pass --resume to continue it or choose another --out")
    aug = AugmentConfig(
        size=a.size,
        hflip=not a.no_hflip,
        color_jitter=a.color_jitter,
        coarse_dropout=a.coarse_dropout,
        scale_rotate=a.scale_rotate,
        webcam_framing=a.webcam_framing,
        blur_noise=a.blur_noise,
        skin_distractors=a.skin_distractors,
        distractors_off_face=a.distractors_off_face,
        lighting=a.lighting,
        hard_light=a.hard_light,
        backlight=a.backlight,
        low_res=a.low_res,
    )
    if a.width and a.model != "fast_unet":
        raise FacecamError(f"--width applies to fast_unet only, not {a.model}")
    cfg = TrainConfig(
        data=list(a.data),
        model_kwargs={"width": a.width} if a.width else {},
        out=str(a.out),
        model=a.model,
        epochs=a.epochs,
        batch_size=a.batch_size,
        hole_weight=a.hole_weight,
        lr=a.lr,
        weight_decay=a.weight_decay,
        size=a.size,
        train_split=a.train_split,
        val_split=a.val_split,
        device=a.device,
        workers=a.workers,
        threads=a.threads,
        seed=a.seed,
        resume=a.resume,
        init=str(a.init) if a.init else "",
        augment=aug,
        command=command_line(),
    )
    best = train(cfg)
    if best.get("iou", -1) >= 0:
        print(f"best val face Dice {best['dice']:.4f}  IoU {best['iou']:.4f}  -> {a.out / 'best.pt'}")
    return 0


@cli_entry
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "prepare":
        from facecam.training.prepare_cli import run_prepare

        return run_prepare(argv[1:])
    if argv and argv[0] == "recover":
        from facecam.training.recover import run_recover

        return run_recover(argv[1:])
    if argv and argv[0] == "evaluate":
        return run_evaluate(argv[1:])
    if argv and argv[0] == "blend":
        return run_blend(argv[1:])
    if argv and argv[0] == "verifier":
        from facecam.training.verifier_cli import run_verifier

        return run_verifier(argv[1:])
    return run_train(argv)


if __name__ == "__main__":
    sys.exit(main())

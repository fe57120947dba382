"""``facecam-train verifier``: train the face verifier from photos and offline teacher boxes, export it.

facecam-train verifier --photos DIR BOXES.json HOLDOUT [--photos ...] --out weights/facecam_verifier.onnx

HOLDOUT is a file listing the photo stems never to train on, or ``every:N`` (every N-th of the
sorted stems, as training.splits.every_nth picks them), or ``none``. The held-out photos are
scored after training (face recall and not-face rejection of the proposals on them).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from facecam.cli_args import OneLineErrorParser, positive_int
from facecam.errors import FacecamError, cli_entry

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def parser() -> OneLineErrorParser:
    p = OneLineErrorParser(prog="facecam-train verifier", description=__doc__.splitlines()[0])
    p.add_argument(
        "--photos",
        nargs=3,
        action="append",
        required=True,
        metavar=("DIR", "BOXES", "HOLDOUT"),
        help="photo folder, its teacher boxes (JSON: stem -> [[x0, y0, x1, y1, score], ...]) and its held-out "
        "photos (a list file, every:N, or none)",
    )
    p.add_argument("--segmenter", default=None, help="segmentation model proposing the faces (default: facecam_face)")
    p.add_argument("--epochs", type=positive_int, default=8)
    p.add_argument(
        "--cache", type=Path, help="keep the collected crops in this .npz and reuse them when it exists (a rerun)"
    )
    p.add_argument(
        "--grey",
        action="store_true",
        help="train the grey twin on the crops without their colour; --out must then end in _grey.onnx "
        "(the runtime looks for NAME_grey.onnx beside NAME.onnx)",
    )
    p.add_argument("--out", required=True, type=Path, help="the verifier's .onnx")
    return p


def split_photos(folder: Path, holdout: str) -> tuple[list[Path], list[Path]]:
    """``(train, held out)`` photos of ``folder`` by the HOLDOUT rule."""
    from facecam.training.splits import every_nth

    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not photos:
        raise FacecamError(f"no photos in {folder}")
    if holdout == "none":
        return photos, []
    if holdout.startswith("every:"):
        held_names, _ = every_nth([p.stem for p in photos], int(holdout.split(":", 1)[1]))
    else:
        held_names = Path(holdout).read_text().split()
    held = set(held_names)
    return [p for p in photos if p.stem not in held], [p for p in photos if p.stem in held]


def collect_all(photo_sets: list[list[str]], segmenter_name: str | None):
    """``(crops, labels, held-out crops, held-out labels)`` of every ``(DIR, BOXES, HOLDOUT)`` set."""
    from facecam.realtime.faces import FaceFinder
    from facecam.realtime.segmenter import Segmenter
    from facecam.training.teacher_boxes import read_teacher_boxes
    from facecam.training.verifier import VERIFIER_SIZE, collect

    train_sets, held_sets = [], []
    with Segmenter(segmenter_name, provider="cpu") as segmenter:
        finder = FaceFinder(segmenter, smoothing=0, find_every=1, photo=True)
        for folder, boxes, holdout in photo_sets:
            train, held = split_photos(Path(folder), holdout)
            teacher = read_teacher_boxes(Path(boxes))
            train_sets.append(collect(train, teacher, finder))
            if held:
                held_sets.append(collect(held, teacher, finder, seed=1))
            print(f"{folder}: {len(train)} photos to train on, {len(held)} held out", file=sys.stderr)
    empty = (np.zeros((0, VERIFIER_SIZE, VERIFIER_SIZE, 3), np.uint8), np.zeros(0, np.int64))
    held_crops = np.concatenate([d.crops for d in held_sets]) if held_sets else empty[0]
    held_labels = np.concatenate([d.labels for d in held_sets]) if held_sets else empty[1]
    crops = np.concatenate([d.crops for d in train_sets])
    labels = np.concatenate([d.labels for d in train_sets])
    return crops, labels, held_crops, held_labels


def run_verifier(argv: list[str]) -> int:
    from facecam.export.onnx_export import export_classifier
    from facecam.training.train import command_line
    from facecam.training.verifier import VerifierData, face_scores, train_verifier, verifier_card

    a = parser().parse_args(argv)
    if a.grey and not a.out.stem.endswith("_grey"):
        raise FacecamError(f"--grey trains the grey twin: --out {a.out} must end in _grey.onnx (NAME_grey.onnx)")
    if a.cache is not None and a.cache.is_file():
        with np.load(a.cache) as cached:
            crops, labels, held_crops, held_labels = (
                cached[k] for k in ("crops", "labels", "held_crops", "held_labels")
            )
    else:
        crops, labels, held_crops, held_labels = collect_all(a.photos, a.segmenter)
        if a.cache is not None:
            np.savez(a.cache, crops=crops, labels=labels, held_crops=held_crops, held_labels=held_labels)
    if a.grey:
        from facecam.training.verifier import grey_crops

        crops, held_crops = grey_crops(crops), grey_crops(held_crops)
    print(f"{len(labels)} {'grey ' if a.grey else ''}crops, {int(labels.sum())} faces; training", file=sys.stderr)
    t0 = time.perf_counter()
    model = train_verifier(VerifierData(crops, labels), epochs=a.epochs)
    metrics = {"train_seconds": round(time.perf_counter() - t0, 1)}
    if len(held_labels):
        kept = face_scores(model, held_crops) > 0.5
        faces, others = kept[held_labels == 1], kept[held_labels == 0]
        if faces.size:  # a figure only where the held-out photos have crops of that kind
            metrics["holdout_face_kept"] = round(float(faces.mean()), 4)
        if others.size:
            metrics["holdout_not_face_rejected"] = round(float((~others).mean()), 4)
    dataset = "; ".join(f"{f} (held out: {h})" for f, _, h in a.photos) + ("; crops in grey" if a.grey else "")
    card = verifier_card(dataset, a.epochs, metrics, command_line())
    export_classifier(model, card, a.out)
    print(f"wrote {a.out}")
    return 0


@cli_entry
def main(argv: list[str] | None = None) -> int:
    return run_verifier(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())

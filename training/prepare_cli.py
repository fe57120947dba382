"""``facecam-train prepare``: convert a data set to the facecam layout (see each converter's module)."""

from __future__ import annotations

import sys
from pathlib import Path

from facecam.cli_args import OneLineErrorParser, non_negative_int, positive_int
from facecam.errors import FacecamError


def prepare_parser() -> OneLineErrorParser:
    from facecam.training.celebamask import CUTOUT_PARTS, FACE_PARTS, HAIR_PARTS

    p = OneLineErrorParser(prog="facecam-train prepare", description="Convert a data set to the facecam layout.")
    p.add_argument(
        "dataset",
        choices=["celebamask", "person", "sfa", "crops", "negatives"],
        help="celebamask: CelebAMask-HQ parts -> face/hair labels; person: person masks -> background and "
        "not-face labels for rooms and bodies, face labels where a teacher model is sure; sfa: SFA skin masks "
        "-> face (the face's skin with its holes filled) and not-face labels, every 5th photo held out; crops: "
        "scene or group photos -> the square crops the runtime cuts around each face of a detector's boxes, "
        "labelled where near-certain; negatives: labelled scene photos -> the crops the runtime cuts around "
        "what it wrongly follows as a face (hands, lamps, chests), with the photos' own labels",
    )
    p.add_argument(
        "--src",
        required=True,
        type=Path,
        help="CelebAMask-HQ folder (CelebA-HQ-img/, CelebAMask-HQ-mask-anno/), or for person a folder with "
        "images/, labels/ (0 background, >0 person) and a split list, or for sfa one with images/, labels/ "
        "(0 not skin, 1 skin) and all.txt",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    person = p.add_argument_group("person")
    person.add_argument(
        "--teacher",
        default="facecam_face",
        help="model that finds the heads: sure faces labelled, the rest ignored (negatives: the model whose "
        "false faces are collected)",
    )
    person.add_argument(
        "--split",
        help="person, sfa: split list of the source (default all); crops: a split list of the source or a .txt "
        "list file (default train; photos in the source's holdout.txt are refused); negatives: a split list of "
        "the source (default train; held-out photos refused)",
    )
    person.add_argument("--holdout", type=non_negative_int, default=0, help="photos kept out of train.txt")
    sfa = p.add_argument_group("sfa")
    sfa.add_argument(
        "--ring",
        type=non_negative_int,
        default=2,
        help="ignored (255) pixels on each side of the face's outline; 0 = none (every edge pixel scored)",
    )
    crops = p.add_argument_group("crops")
    crops.add_argument(
        "--boxes",
        type=Path,
        help='teacher face boxes, JSON {"NAME": [[x0, y0, x1, y1, score], ...]} (CenterFace, offline)',
    )
    crops.add_argument(
        "--labels",
        default="person",
        choices=["person", "skin"],
        help="what --src's labels are: prepare person's, or skin",
    )
    crops.add_argument(
        "--boxes-photos", type=Path, help="the photos the boxes were measured on, when --src shrank them"
    )
    p.add_argument("--face-parts", default=",".join(FACE_PARTS), help="comma-separated parts that form the face")
    p.add_argument("--hair-parts", default=",".join(HAIR_PARTS), help="comma-separated parts that form hair")
    p.add_argument("--cutout-parts", default=",".join(CUTOUT_PARTS), help="parts cut out of face and hair")
    p.add_argument(
        "--size",
        type=positive_int,
        default=512,
        help="celebamask: side of the written images; person: larger photos are shrunk to this long side",
    )
    p.add_argument("--limit", type=non_negative_int, default=0, help="first N images only (original: 5000)")
    p.add_argument("--val-count", type=non_negative_int, default=0, help="validation images (0 = 10%%; original: 500)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _split_parts(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def run_prepare(argv: list[str]) -> int:
    from facecam.training.celebamask import PrepareConfig, prepare_celebamask

    a = prepare_parser().parse_args(argv)
    if a.dataset == "crops":
        from facecam.training.face_crops import CropsConfig, prepare_crops

        if a.boxes is None:
            raise FacecamError("prepare crops needs --boxes BOXES.json")
        counts = prepare_crops(
            CropsConfig(
                src=a.src,
                boxes=a.boxes,
                out=a.out,
                split=a.split or "train",
                labels=a.labels,
                boxes_size=a.boxes_photos,
                teacher=a.teacher,
                seed=a.seed,
            )
        )
        print(f"wrote {a.out}: {counts['crops']} crops of faces in {counts['photos']} photos")
        return 0
    if a.dataset == "negatives":
        from facecam.training.false_faces import FalseFacesConfig, prepare_false_faces

        counts = prepare_false_faces(
            FalseFacesConfig(src=a.src, out=a.out, split=a.split or "train", teacher=a.teacher, seed=a.seed)
        )
        print(
            f"wrote {a.out}: {counts['crops']} crops of false faces in {counts['photos']} of "
            f"{counts['searched']} photos"
        )
        return 0
    if a.dataset == "sfa":
        from facecam.training.sfa import SfaPrepareConfig, prepare_sfa

        counts = prepare_sfa(SfaPrepareConfig(src=a.src, out=a.out, split=a.split or "all", ring=a.ring))
        print(
            f"wrote {a.out}: {counts['train']} train, {counts['val']} val, {counts['holdout']} held out "
            f"(holdout.txt: never train on it)"
        )
        return 0
    if a.dataset == "person":
        from facecam.training.person import PersonPrepareConfig, prepare_person

        counts = prepare_person(
            PersonPrepareConfig(
                src=a.src,
                out=a.out,
                teacher=a.teacher,
                split=a.split or "all",
                max_side=a.size,
                holdout=a.holdout,
                seed=a.seed,
            )
        )
        note = f" ({counts['no_person']} with no person pixel: all background)" if counts["no_person"] else ""
        print(f"wrote {a.out}: {counts['train']} train, {counts['holdout']} held out{note}")
        return 0
    cfg = PrepareConfig(
        src=a.src,
        out=a.out,
        face_parts=_split_parts(a.face_parts),
        hair_parts=_split_parts(a.hair_parts),
        cutout_parts=_split_parts(a.cutout_parts),
        size=a.size,
        limit=a.limit,
        val_count=a.val_count,
        seed=a.seed,
    )
    counts = prepare_celebamask(cfg, progress=sys.stderr.isatty())
    print(f"wrote {a.out}: {counts['train']} train, {counts['val']} val")
    return 0

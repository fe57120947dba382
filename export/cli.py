"""``facecam-export``: a training checkpoint to ONNX FP32 (and FP16) with the model card inside; an
exported FP32 model to its INT8 twin for the CPU (``--quantize``)."""

from __future__ import annotations

import sys
from pathlib import Path

from facecam.cli_args import OneLineErrorParser
from facecam.errors import cli_entry


def parser() -> OneLineErrorParser:
    p = OneLineErrorParser(
        prog="facecam-export",
        description="Export a facecam-train checkpoint to ONNX, with its preprocessing and model card inside, "
        "checked against torch.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", type=Path, help="RUN/best.pt from facecam-train")
    which.add_argument(
        "--quantize",
        type=Path,
        metavar="MODEL.onnx",
        help="write the INT8 twin of an exported FP32 model, MODEL_int8.onnx beside it, which the CPU then runs",
    )
    p.add_argument("--out", type=Path, help="FP32 model path, e.g. weights/NAME.onnx (with --checkpoint)")
    p.add_argument("--fp16", action="store_true", help="also write NAME_fp16.onnx beside it (for GPU providers)")
    p.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim")
    p.add_argument(
        "--calibration",
        nargs="+",
        type=Path,
        metavar="DIR|SPLIT.txt",
        help="with --quantize: photos the INT8 ranges are measured on (folders, or split files whose "
        "photos are in images/ beside them); keep test photos out",
    )
    p.add_argument("--photos", type=int, default=200, help="with --quantize: how many of them (spread evenly)")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quantize is not None:
        if not args.calibration:
            p.error("--quantize needs --calibration DIR|SPLIT.txt (photos to measure the INT8 ranges on)")
        if args.out is not None or args.fp16 or args.simplify:
            p.error(
                "--quantize writes MODEL_int8.onnx beside MODEL.onnx; --out, --fp16 and --simplify are for --checkpoint"
            )
        from facecam.export.int8 import MIN_PHOTOS, quantize_int8

        if args.photos < MIN_PHOTOS:
            p.error(f"--photos must be at least {MIN_PHOTOS}")
        report = quantize_int8(args.quantize, args.calibration, args.photos)
        for line in report.checks:
            print(line)
        print(f"wrote {report.path}")
        return 0
    if args.out is None:
        p.error("--checkpoint needs --out MODEL.onnx")
    if args.calibration or args.photos != p.get_default("photos"):
        p.error("--calibration and --photos are for --quantize (make the INT8 twin after the export)")
    from facecam.export.onnx_export import export_onnx

    report = export_onnx(args.checkpoint, args.out, fp16=args.fp16, simplify=args.simplify)
    for line in report.checks:
        print(line)
    print(f"wrote {report.fp32_path}" + (f" and {report.fp16_path}" if report.fp16_path else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

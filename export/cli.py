"""``facecam-export``: a training checkpoint to ONNX FP32 (and FP16) with the model card inside."""

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
    p.add_argument("--checkpoint", required=True, type=Path, help="RUN/best.pt from facecam-train")
    p.add_argument("--out", required=True, type=Path, help="FP32 model path, e.g. weights/NAME.onnx")
    p.add_argument("--fp16", action="store_true", help="also write NAME_fp16.onnx beside it (for GPU providers)")
    p.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    from facecam.export.onnx_export import export_onnx

    report = export_onnx(args.checkpoint, args.out, fp16=args.fp16, simplify=args.simplify)
    for line in report.checks:
        print(line)
    print(f"wrote {report.fp32_path}" + (f" and {report.fp16_path}" if report.fp16_path else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

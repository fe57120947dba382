"""The live camera's command-line options, checked into a :class:`CameraSource`.

``--camera`` takes an index, a device path or a stream URL; ``--camera-size WxH`` and
``--camera-fps N`` are asked of the driver; ``--virtual-camera [NAME]`` sends the result to
a call app; ``--mirror`` flips the preview window only. Each type's error is argparse's one
line (exit 2); :func:`check_camera_options` refuses camera flags without a camera.
"""

from __future__ import annotations

import argparse
import os

from facecam.errors import FacecamError
from facecam.realtime.camera import STREAM_SCHEMES, CameraSource, is_stream_url

#: the frame sizes and rates a camera may be asked for; outside them the request is a typo
SIZE_RANGE = (16, 8192)
FPS_RANGE = (1.0, 240.0)


def camera_location(text: str) -> int | str:
    """``--camera``: an index (``0``), a device path that exists (``/dev/video2``) or a stream URL."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if is_stream_url(text) or (text and os.path.exists(text)):
        return text
    schemes = ", ".join(f"{s}://" for s in STREAM_SCHEMES)
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a camera index (0 = the first camera), a device path that exists or a URL ({schemes})"
    )


def camera_size(text: str) -> tuple[int, int]:
    """``--camera-size``: ``WIDTHxHEIGHT`` in pixels, e.g. ``1280x720``."""
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT such as 1280x720, got {text!r}")
    width, height = int(parts[0]), int(parts[1])
    low, high = SIZE_RANGE
    if not (low <= width <= high and low <= height <= high):
        raise argparse.ArgumentTypeError(f"width and height must be within {low}..{high} pixels, got {text}")
    return width, height


def camera_fps(text: str) -> float:
    """``--camera-fps``: frames a second within FPS_RANGE."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of frames a second, got {text!r}") from None
    low, high = FPS_RANGE
    if not low <= value <= high:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be within {low:g}..{high:g} frames a second, got {text}")
    return value


def add_camera_options(p: argparse.ArgumentParser) -> None:
    """The flags that shape a ``--camera`` run (``--camera`` itself sits in the source group)."""
    p.add_argument(
        "--camera-size",
        type=camera_size,
        metavar="WxH",
        help="camera: frame size to ask the driver for, e.g. 1280x720 (what it delivers is printed)",
    )
    p.add_argument(
        "--camera-fps",
        type=camera_fps,
        metavar="N",
        help="camera: frame rate to ask the driver for (what it delivers is printed)",
    )
    p.add_argument(
        "--virtual-camera",
        nargs="?",
        const="",
        metavar="NAME",
        help="camera: send the result to a virtual camera for Zoom/Meet/Teams, at the camera's constant frame "
        "rate (NAME: a device such as /dev/video10 or 'OBS Virtual Camera'; none: the first found); "
        'needs pip install "facecam[vcam]"',
    )
    p.add_argument(
        "--mirror",
        action="store_true",
        help="camera: flip the preview window (not the recording or the virtual camera), as a mirror shows you",
    )


def camera_source(args: argparse.Namespace) -> CameraSource:
    """The camera of a ``--camera`` run with what to ask its driver."""
    return CameraSource(args.camera, size=args.camera_size, fps=args.camera_fps)


def check_camera_options(args: argparse.Namespace) -> None:
    """Camera flags need ``--camera``; ``--virtual-camera`` needs pyvirtualcam (checked now, before
    the model loads and the camera opens, so a missing extra fails at once)."""
    if args.camera is None:
        given = [
            flag
            for flag, value in (
                ("--camera-size", args.camera_size),
                ("--camera-fps", args.camera_fps),
                ("--virtual-camera", args.virtual_camera is not None),
                ("--mirror", args.mirror),
            )
            if value
        ]
        if given:
            raise FacecamError(f"{', '.join(given)} only applies to a live camera; add --camera INDEX|PATH|URL")
    if args.virtual_camera is not None:
        from facecam.realtime.vcam import load_pyvirtualcam

        load_pyvirtualcam()

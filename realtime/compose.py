"""Output modes: what is drawn from a frame and its face mask.

``compose(frame, mask, settings)`` takes the ``(H, W, 3) uint8 BGR`` frame and the
``(h, w) float32`` 0..1 mask at inference resolution, upsamples the mask edge-aware to the
frame's size and returns the ``(H, W, 3) uint8 BGR`` result. Per-pixel blending runs in
OpenCV (``cv2.blendLinear``), not in full-frame NumPy float math.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facecam.errors import FacecamError, UnknownNameError
from facecam.realtime.crops import Box
from facecam.realtime.processing import upsample_mask
from facecam.realtime.tracking import HeldFace

MODES = ("overlay", "mask", "blur", "replace", "anonymize")
ANONYMIZE_STYLES = ("pixelate", "blur")
OVERLAY_BGR = (0, 220, 0)  # the classic translucent green face mask
OVERLAY_ALPHA = 0.4
NAMED_COLORS = {
    "green": (0, 177, 64),
    "blue": (255, 71, 0),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}


@dataclass
class ComposeSettings:
    """How to draw the result (defaults: overlay; blur sigma 8 px; pixelated anonymisation)."""

    mode: str = "overlay"
    background: np.ndarray | tuple[int, int, int] | None = None  # replace mode: BGR image or colour
    blur_sigma: float = 8.0  # background blur strength in full-resolution pixels
    anonymize_style: str = "pixelate"
    anonymize_margin: float = 0.15  # anonymize: each face's region grown this share of its size beyond its outline
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UnknownNameError(f"unknown mode {self.mode!r}; valid modes: {', '.join(MODES)}")
        if self.anonymize_style not in ANONYMIZE_STYLES:
            raise UnknownNameError(
                f"unknown anonymize style {self.anonymize_style!r}; valid: {', '.join(ANONYMIZE_STYLES)}"
            )
        if not 0 <= self.anonymize_margin <= 2:
            raise FacecamError(
                f"anonymize_margin must be within 0..2 (a share of the face's size), got {self.anonymize_margin}"
            )
        if self.background is None:  # the camera window may switch to replace mode later
            self.background = NAMED_COLORS["green"]


def parse_background(spec: str) -> np.ndarray | tuple[int, int, int]:
    """``--background``: an image path, a colour name, or ``#RRGGBB`` -> BGR image or BGR tuple."""
    if spec.lower() in NAMED_COLORS:
        return NAMED_COLORS[spec.lower()]
    if spec.startswith("#") and len(spec) == 7:
        try:
            r, g, b = (int(spec[i : i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            pass
        else:
            return (b, g, r)
    path = Path(spec)
    if not path.is_file():
        raise FacecamError(
            f"background {spec!r} is neither an image file nor a colour ({', '.join(NAMED_COLORS)} or #RRGGBB)"
        )
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FacecamError(f"background image {path} cannot be read as an image")
    return image


def _blend(top: np.ndarray, bottom: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``top * alpha + bottom * (1 - alpha)``; uint8 images, ``alpha`` ``(H, W) float32``."""
    return cv2.blendLinear(top, bottom, alpha, 1.0 - alpha)


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize and centre-crop ``image`` to fill ``height x width`` without distortion."""
    scale = max(height / image.shape[0], width / image.shape[1])
    resized = cv2.resize(
        image,
        (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))),
        interpolation=cv2.INTER_AREA,
    )
    y, x = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[y : y + height, x : x + width])


def _background_image(settings: ComposeSettings, height: int, width: int) -> np.ndarray:
    key = ("background", height, width)
    if key not in settings._cache:
        bg = settings.background
        if isinstance(bg, np.ndarray):
            settings._cache[key] = _cover(bg, height, width)
        else:
            settings._cache[key] = np.full((height, width, 3), bg, np.uint8)
    return settings._cache[key]


def halo_free_blur(frame: np.ndarray, face: np.ndarray, sigma: float) -> np.ndarray:
    """Blur the background without smearing the face into it.

    A normalised convolution: blur(frame * background weight) / blur(background weight), so
    face pixels contribute nothing to the blurred background (no halo of face colour around
    the head). Runs at reduced resolution (the blur hides the difference) and is upsampled.
    ``frame`` ``(H, W, 3) uint8``, ``face`` ``(H, W) float32`` 0..1 -> ``(H, W, 3) uint8``.
    """
    height, width = frame.shape[:2]
    factor = max(1, min(4, int(sigma // 2)))
    small_size = (max(1, width // factor), max(1, height // factor))
    small = cv2.resize(frame, small_size, interpolation=cv2.INTER_AREA).astype(np.float32)
    weight = 1.0 - cv2.resize(face, small_size, interpolation=cv2.INTER_AREA)
    s = sigma / factor
    num = cv2.GaussianBlur(small * weight[..., None], (0, 0), s)
    den = cv2.GaussianBlur(weight, (0, 0), s)[..., None]
    plain = cv2.GaussianBlur(small, (0, 0), s)  # where there is no background at all nearby
    blurred = np.where(den > 1e-3, num / np.maximum(den, 1e-3), plain)
    return cv2.resize(np.clip(blurred, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)


def anonymized(frame: np.ndarray, style: str) -> np.ndarray:
    """The whole frame pixelated (blocks of ~1/40 of the short side) or strongly blurred."""
    height, width = frame.shape[:2]
    block = max(6, min(height, width) // 40)
    small = cv2.resize(frame, (max(1, width // block), max(1, height // block)), interpolation=cv2.INTER_AREA)
    if style == "blur":
        small = cv2.GaussianBlur(small, (0, 0), 1.5)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def face_alpha(
    frame: np.ndarray,
    mask: np.ndarray,
    mode: str,
    gray: np.ndarray | None = None,
    small_gray: np.ndarray | None = None,
    faces: list[Box] = (),
    held: list[HeldFace] = (),
    settings: ComposeSettings | None = None,
) -> np.ndarray:
    """The low-res mask as a full-resolution ``(H, W) float32`` 0..1 alpha for ``mode`` (edge-aware).

    In anonymize mode privacy errs on the side of covering: the mask grows by a couple of
    grid pixels, each face (``faces``, frame-pixel boxes) gets an ellipse reaching
    ``settings.anonymize_margin`` of its size beyond it, and each face just lost (``held``)
    stays covered by an ellipse at its last place.
    """
    if mode == "anonymize":
        mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
        margin = settings.anonymize_margin if settings is not None else 0.0
        scale = mask.shape[1] / frame.shape[1]
        regions = [f.grown(1 + 2 * margin) for f in faces if margin > 0] + [h.box.grown(1 + 2 * margin) for h in held]
        for box in regions:
            cx, cy = box.center
            axes = (max(1, round((box.x1 - box.x0) * scale / 2)), max(1, round((box.y1 - box.y0) * scale / 2)))
            cv2.ellipse(mask, (round(cx * scale), round(cy * scale)), axes, 0, 0, 360, 1.0, -1)
    return upsample_mask(mask, frame, gray, small_gray)


def draw(frame: np.ndarray, face: np.ndarray, settings: ComposeSettings, mode: str | None = None) -> np.ndarray:
    """``mode`` (default ``settings.mode``) drawn from the frame and its full-resolution face alpha.

    The pipeline passes the mode its frame was captured with, so a mode switch mid-run never
    pairs one mode's alpha (anonymize grows the face) with another's drawing.
    """
    height, width = frame.shape[:2]
    mode = mode or settings.mode
    if mode == "mask":
        return cv2.cvtColor((face * 255 + 0.5).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if mode == "overlay":
        key = ("overlay", height, width)
        if key not in settings._cache:
            settings._cache[key] = np.full((height, width, 3), OVERLAY_BGR, np.uint8)
        tinted = cv2.addWeighted(frame, 1 - OVERLAY_ALPHA, settings._cache[key], OVERLAY_ALPHA, 0)
        return _blend(tinted, frame, face)
    if mode == "blur":
        return _blend(frame, halo_free_blur(frame, face, settings.blur_sigma), face)
    if mode == "replace":
        return _blend(frame, _background_image(settings, height, width), face)
    return _blend(anonymized(frame, settings.anonymize_style), frame, face)


def compose(
    frame: np.ndarray,
    mask: np.ndarray,
    settings: ComposeSettings,
    gray: np.ndarray | None = None,
    small_gray: np.ndarray | None = None,
) -> np.ndarray:
    """Draw ``settings.mode`` for one frame; see the module docstring for shapes."""
    return draw(frame, face_alpha(frame, mask, settings.mode, gray, small_gray), settings)

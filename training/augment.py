"""Training augmentations: the original's (ColorJitter, CoarseDropout), geometry, and a webcam framing.

All functions take and return ``(H, W, 3) uint8 RGB`` images with ``(H, W) uint8`` label
maps. CoarseDropout fills its holes in the label with background, which is what taught the
original model occlusions: a hand or a cup over the face is not face.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facecam.training.dataset import PairTransform
from facecam.training.light import random_backlight

#: ``--low-res``: the picture shrunk to this share of its side and enlarged back, as the runtime
#: enlarges a small face's crop (a 30 px face's crop of 66 px is segmented at 96-224 model pixels,
#: passes.crop_input_side); the label stays sharp: the mask is wanted at the model's resolution
LOW_RES_SCALE = (0.2, 0.5)


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run and how strongly (defaults: the original's set plus webcam framing)."""

    size: int = 256  # square side of the training crops
    hflip: bool = True
    color_jitter: float = 0.3  # brightness/contrast/saturation strength, 0 = off
    coarse_dropout: float = 0.5  # probability of occluding holes, 0 = off
    scale_rotate: float = 0.7  # probability of a random scale/rotate/shift, 0 = off
    webcam_framing: float = 0.4  # probability of shrinking the face onto a new background, 0 = off
    blur_noise: float = 0.3  # probability of camera-like blur, noise or JPEG loss, 0 = off
    skin_distractors: float = 0.0  # probability of pasting hand/arm-like patches of the face's own skin, 0 = off
    distractors_off_face: bool = False  # the patches only where they do not touch the face
    lighting: float = 0.0  # probability of a gamma change (dim or bright rooms) or a grey frame, 0 = off
    hard_light: float = 0.0  # probability of a dim noisy room, a colour cast or light from one side, 0 = off
    backlight: float = 0.0  # probability of a bright light behind the subject (light.random_backlight), 0 = off
    low_res: float = 0.0  # probability of the picture at LOW_RES_SCALE of its resolution, enlarged back, 0 = off


def synthetic_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random plausible room-like backdrop: a colour gradient with soft shapes and noise.

    Returns ``(height, width, 3) uint8``.
    """
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, height if rng.random() < 0.5 else width, dtype=np.float32)
    ramp = (c0[None] * (1 - t[:, None]) + c1[None] * t[:, None]).astype(np.uint8)
    bg = np.repeat(ramp[:, None], width, 1) if len(t) == height else np.repeat(ramp[None], height, 0)
    bg = np.ascontiguousarray(bg)
    for _ in range(rng.integers(0, 6)):  # furniture, frames, windows
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(width // 10, width)), y0 + int(rng.integers(height // 10, height))
        cv2.rectangle(bg, (x0, y0), (x1, y1), tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    bg = cv2.GaussianBlur(bg, (0, 0), float(rng.uniform(0.5, 6)))
    noise = rng.normal(0, rng.uniform(0, 8), bg.shape)
    return np.clip(bg + noise, 0, 255).astype(np.uint8)


def webcam_framing(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator, scale_range: tuple[float, float] = (0.45, 0.9)
) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the photo and place it, shifted, on a new backdrop of the original size.

    Webcam frames show the face smaller and off-centre, over rooms the face data never had.
    The pasted photo's border is feathered so the model cannot learn "face = inside a box".
    The new backdrop is labelled background.
    """
    h, w = label.shape
    s = rng.uniform(*scale_range)
    sh, sw = max(8, int(h * s)), max(8, int(w * s))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    small_label = cv2.resize(label, (sw, sh), interpolation=cv2.INTER_NEAREST)
    y, x = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
    canvas = synthetic_background(h, w, rng)
    out_label = np.zeros_like(label)
    alpha = np.zeros((sh, sw), np.float32)
    cv2.rectangle(alpha, (0, 0), (sw - 1, sh - 1), 1.0, -1)
    border = max(1, min(sh, sw) // 12)
    alpha = cv2.GaussianBlur(cv2.erode(alpha, np.ones((border, border), np.uint8)), (0, 0), border / 2)[..., None]
    region = canvas[y : y + sh, x : x + sw].astype(np.float32)
    canvas[y : y + sh, x : x + sw] = (small * alpha + region * (1 - alpha)).astype(np.uint8)
    out_label[y : y + sh, x : x + sw] = small_label
    return canvas, out_label


def skin_distractors(
    image: np.ndarray,
    label: np.ndarray,
    rng: np.random.Generator,
    count: tuple[int, int] = (1, 3),
    off_face: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste hand- and arm-like shapes textured with the face's own skin, labelled background.

    Face data rarely shows arms and hands, so a model learns "skin colour = face" and paints
    every bare arm. These patches have the face's exact colour and texture but are not face:
    elsewhere they teach arms, over the face they are a hand covering it (not face either).
    ``off_face``: only where a patch does not touch the face (grown by a fortieth of the
    image): a smooth skin-toned patch over a cheek, labelled not face, may teach the model to
    leave a lit cheek or pouted lips out (issue 12's suspect for the holes).
    """
    face = label == 1
    if face.sum() < 64:
        return image, label
    # The face's skin tone without its features: the median colour, shaded and grained.
    tone = np.median(image[face], axis=0).astype(np.float32)
    h, w = label.shape
    image, label = image.copy(), label.copy()
    # grown past the patch's feathered rim (its blur reaches 6 px), and by a fortieth of the image
    grow = 2 * max(7, max(h, w) // 40) + 1
    keep_out = cv2.dilate(face.astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0 if off_face else None
    for _ in range(int(rng.integers(count[0], count[1] + 1))):
        shape = _distractor_shape((h, w), rng, keep_out)
        if shape is None:
            continue
        shading = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), max(h, w) / 12)
        shading = 1 + 0.25 * shading / (np.abs(shading).max() + 1e-6) + rng.uniform(-0.2, 0.1)
        texture = tone[None, None] * shading[..., None] + rng.normal(0, 3, (h, w, 3))
        alpha = cv2.GaussianBlur(shape.astype(np.float32) / 255, (0, 0), 1.5)[..., None]
        image = np.clip(texture * alpha + image.astype(np.float32) * (1 - alpha), 0, 255).astype(np.uint8)
        label[shape > 127] = 0
    return image, label


def _distractor_shape(
    hw: tuple[int, int], rng: np.random.Generator, keep_out: np.ndarray | None, tries: int = 12
) -> np.ndarray | None:
    """``(h, w) uint8`` 255 inside one random arm-like ellipse; with ``keep_out`` (``bool``), one
    that does not touch it (None when ``tries`` random ellipses all did)."""
    h, w = hw
    for _ in range(tries if keep_out is not None else 1):
        long_axis = int(rng.uniform(0.15, 0.45) * max(h, w))
        short_axis = max(3, int(long_axis * rng.uniform(0.2, 0.45)))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        shape = np.zeros((h, w), np.uint8)
        cv2.ellipse(shape, centre, (long_axis, short_axis), float(rng.uniform(0, 180)), 0, 360, 255, -1)
        if keep_out is None or not shape[keep_out].any():
            return shape
    return None


def build_train_transform(config: AugmentConfig, seed: int | None = None) -> PairTransform:
    """The training augmentation as one ``(image, label) -> (image, label)`` function."""
    import albumentations as A

    size = config.size
    ops = [A.LongestMaxSize(max_size=size), A.PadIfNeeded(size, size, border_mode=cv2.BORDER_REFLECT_101)]
    if config.hflip:
        ops.append(A.HorizontalFlip(p=0.5))
    if config.scale_rotate:
        ops.append(
            A.Affine(
                scale=(0.7, 1.25),
                rotate=(-25, 25),
                translate_percent=(-0.1, 0.1),
                border_mode=cv2.BORDER_REFLECT_101,
                p=config.scale_rotate,
            )
        )
    if config.color_jitter:
        j = config.color_jitter
        ops.append(A.ColorJitter(brightness=j, contrast=j, saturation=j, hue=0.05, p=0.8))
    if config.lighting:
        # dim or bright rooms, and colour-free frames: a face is found by its shape, not its tone
        # (OneOf weighs its choices by their own p, so both get 1)
        ops.append(A.OneOf([A.RandomGamma(gamma_limit=(60, 180), p=1.0), A.ToGray(p=1.0)], p=config.lighting))
    if config.hard_light:
        ops.append(hard_light(config.hard_light))
    if config.blur_noise:
        ops.append(
            A.OneOf(
                [
                    A.MotionBlur(blur_limit=(3, 7)),
                    A.GaussNoise(std_range=(0.02, 0.08)),
                    A.ImageCompression(quality_range=(30, 90)),
                ],
                p=config.blur_noise,
            )
        )
    if config.low_res:
        ops.append(low_res(config.low_res))
    if config.coarse_dropout:
        ops.append(
            A.CoarseDropout(
                num_holes_range=(1, 4),
                hole_height_range=(0.08, 0.25),
                hole_width_range=(0.08, 0.25),
                fill="random_uniform",
                fill_mask=0,
                p=config.coarse_dropout,
            )
        )
    return _TrainTransform(config, A.Compose(ops, seed=seed), seed)


def low_res(p: float):
    """The image alone at LOW_RES_SCALE of its side (area-averaged) and enlarged back (bilinear):
    the blur of a small face's crop, whose label is as sharp as a big face's."""
    import albumentations as A

    pair = {"downscale": cv2.INTER_AREA, "upscale": cv2.INTER_LINEAR}
    return A.Downscale(scale_range=LOW_RES_SCALE, interpolation_pair=pair, p=p)


def hard_light(p: float):
    """Webcam light that LFW's press photos lack, one of: a dim room (dark, low contrast, the
    sensor's colour noise), a warm or cold lamp (black-body colour temperature), or light
    falling from one side or a window behind (a brightness ramp or spot that also darkens)."""
    import albumentations as A

    dim_room = A.Sequential(
        [
            A.RandomBrightnessContrast(brightness_limit=(-0.45, -0.15), contrast_limit=(-0.4, -0.1), p=1.0),
            A.ISONoise(color_shift=(0.01, 0.05), intensity=(0.05, 0.3), p=1.0),
        ],
        p=1.0,
    )
    lamp = A.PlanckianJitter(mode="blackbody", temperature_limit=(3000, 10000), p=1.0)
    # Illumination allows at most 0.2 of a ramp or spot; the darkening before makes it a lit side.
    side_light = A.Sequential(
        [
            A.RandomBrightnessContrast(brightness_limit=(-0.4, -0.1), contrast_limit=(-0.2, 0.1), p=1.0),
            A.OneOf(
                [
                    A.Illumination(mode="linear", intensity_range=(0.1, 0.2), effect_type="brighten", p=1.0),
                    A.Illumination(mode="gaussian", intensity_range=(0.1, 0.2), effect_type="brighten", p=1.0),
                ],
                p=1.0,
            ),
        ],
        p=1.0,
    )
    return A.OneOf([dim_room, lamp, side_light], p=p)


class _TrainTransform:
    """Callable pair transform; ``reseed`` gives each DataLoader worker its own random stream."""

    def __init__(self, config: AugmentConfig, pipeline, seed: int | None) -> None:
        self.config, self.pipeline = config, pipeline
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.pipeline.set_random_seed(seed)

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        distract = self.config.skin_distractors and self.rng.random() < self.config.skin_distractors
        off_face = self.config.distractors_off_face
        if distract and not off_face:
            image, label = skin_distractors(image, label, self.rng)
        if self.config.webcam_framing and self.rng.random() < self.config.webcam_framing:
            image, label = webcam_framing(image, label, self.rng)
        if distract and off_face:  # after the framing, which leaves room beside a smaller face
            image, label = skin_distractors(image, label, self.rng, off_face=True)
        out = self.pipeline(image=image, mask=label)
        image = out["image"]
        if self.config.backlight and self.rng.random() < self.config.backlight:
            # last, on the crop the model sees: its glow is centred near the middle, where the face is
            image = random_backlight(image, self.rng)
        return image, out["mask"]


def build_eval_transform(size: int) -> PairTransform:
    """Evaluation resize: the image to ``size x size`` (bilinear), the label nearest.

    Metrics are computed at the model's input size, as the original did.
    """

    def transform(image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (
            cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA),
            cv2.resize(label, (size, size), interpolation=cv2.INTER_NEAREST),
        )

    return transform

"""Segmentation models by name: one registry, one ``build_model``.

Every model maps ``(N, 3, H, W)`` normalised float32 to ``(N, num_classes, H, W)`` logits,
and none downloads anything: every backbone starts from random weights
(``weights=None``, ``weights_backbone=None``, ``encoder_weights=None``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from facecam.errors import FacecamError, UnknownNameError


class _DictOutput(nn.Module):
    """torchvision's segmentation models return ``{"out": logits}``; unwrap to a tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def _separable(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BatchNorm and ReLU: cheap on a CPU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class FastUNet(nn.Module):
    """A small UNet of depthwise-separable blocks, built for real-time CPU inference.

    Encoder strides 2, 4, 8, 16, 32 with widths ``width * (1, 2, 4, 8, 16)`` (default
    width 16); the decoder adds each skip through a 1x1 projection and upsamples
    bilinearly, and the head predicts at stride 2 before a final x2 upsample.
    """

    def __init__(self, num_classes: int = 3, width: int = 16) -> None:
        super().__init__()
        w = [width, width * 2, width * 4, width * 8, width * 16]
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        self.down = nn.ModuleList(
            nn.Sequential(_separable(w[i], w[i + 1], stride=2), _separable(w[i + 1], w[i + 1])) for i in range(4)
        )
        self.skip = nn.ModuleList(nn.Conv2d(w[i], w[i], 1, bias=False) for i in range(4))
        self.reduce = nn.ModuleList(nn.Conv2d(w[i + 1], w[i], 1, bias=False) for i in range(4))
        self.up = nn.ModuleList(_separable(w[i], w[i]) for i in range(4))
        self.head = nn.Conv2d(w[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = [self.stem(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        y = feats[-1]
        for i in reversed(range(4)):
            y = F.interpolate(self.reduce[i](y), size=feats[i].shape[-2:], mode="bilinear", align_corners=False)
            y = self.up[i](y + self.skip[i](feats[i]))
        return F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)


def _deeplabv3_resnet50(num_classes: int) -> nn.Module:
    from torchvision.models.segmentation import deeplabv3_resnet50

    return _DictOutput(deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False))


def _deeplabv3_mobilenet_v3_large(num_classes: int) -> nn.Module:
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    return _DictOutput(
        deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    )


def _lraspp_mobilenet_v3_large(num_classes: int) -> nn.Module:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    return _DictOutput(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes))


def _unet_resnet34(num_classes: int) -> nn.Module:
    import segmentation_models_pytorch as smp

    return smp.Unet("resnet34", encoder_weights=None, classes=num_classes)


#: name -> constructor taking ``num_classes`` (and, for some, extra keywords).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "deeplabv3_resnet50": _deeplabv3_resnet50,
    "unet_resnet34": _unet_resnet34,
    "deeplabv3_mobilenet_v3_large": _deeplabv3_mobilenet_v3_large,
    "lraspp_mobilenet_v3_large": _lraspp_mobilenet_v3_large,
    "fast_unet": FastUNet,
}


def build_model(name: str, num_classes: int = 3, **kwargs) -> nn.Module:
    """Build the model registered as ``name`` with random weights (default 3 classes).

    Raises UnknownNameError (a ValueError) listing the valid names when ``name`` is unknown.
    """
    if name not in MODELS:
        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    if num_classes < 1:
        raise FacecamError(f"num_classes must be >= 1, got {num_classes}")
    return MODELS[name](num_classes=num_classes, **kwargs)

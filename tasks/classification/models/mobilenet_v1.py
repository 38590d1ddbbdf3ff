"""MobileNetV1 (Howard et al. 2017), width multiplier 1.0 by default."""

from __future__ import annotations

import torch
from torch import nn

from .weight_init import init_conv_bn

__all__ = ['MobileNetV1', 'mobilenet_v1']

# (output channels, stride) of the 13 depthwise-separable blocks.
_BLOCKS = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
]


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel: int, stride: int, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            in_ch,
            out_ch,
            kernel,
            stride=stride,
            padding=kernel // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class MobileNetV1(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        width_mult: float = 1.0,
        first_stride: int = 2,
        in_channels: int = 3,
    ):
        super().__init__()
        first = int(32 * width_mult)
        layers = [conv_bn_relu(in_channels, first, 3, first_stride)]
        in_ch = first
        for out, stride in _BLOCKS:
            out = int(out * width_mult)
            layers.append(
                nn.Sequential(
                    conv_bn_relu(in_ch, in_ch, 3, stride, groups=in_ch),
                    conv_bn_relu(in_ch, out, 1, 1),
                )
            )
            in_ch = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def mobilenet_v1(
    num_classes: int = 1000,
    width_mult: float = 1.0,
    first_stride: int = 2,
    in_channels: int = 3,
) -> MobileNetV1:
    """MobileNetV1: 4.2M parameters at 1000 classes."""
    return MobileNetV1(num_classes, width_mult, first_stride, in_channels)

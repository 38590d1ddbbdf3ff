"""PyramidNet (Han, Kim & Kim 2017) with basic blocks, for 32x32 inputs.

The width grows by ``alpha / (3 n)`` channels per block (additive pyramid);
shortcuts are parameter-free: average pooling when the block downsamples, zero
channels padded onto the identity when the width grows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .weight_init import init_conv_bn

__all__ = ['PyramidNet', 'pyramidnet110']


class PyramidBasicBlock(nn.Module):
    """BN-conv3x3-BN-ReLU-conv3x3-BN (no ReLU after the addition)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(
            in_ch, out_ch, 3, stride=stride, padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.stride = stride
        self.extra_channels = out_ch - in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.bn1(x))
        out = self.bn3(self.conv2(self.relu(self.bn2(out))))
        identity = (
            x if self.stride == 1 else F.avg_pool2d(x, 2, ceil_mode=True)
        )
        if self.extra_channels:
            identity = F.pad(identity, (0, 0, 0, 0, 0, self.extra_channels))
        return out + identity


class PyramidNet(nn.Module):
    def __init__(
        self,
        depth: int = 110,
        alpha: float = 270,
        num_classes: int = 100,
        in_channels: int = 3,
    ):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(
                f'PyramidNet with basic blocks needs depth 6n+2 (e.g. 110, '
                f'272), got {depth}'
            )
        n = (depth - 2) // 6
        add_rate = alpha / (3 * n)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        width, in_ch = 16.0, 16
        stages = []
        for i in range(3):
            blocks = []
            for j in range(n):
                width += add_rate
                out_ch = int(round(width))
                blocks.append(
                    PyramidBasicBlock(
                        in_ch, out_ch, 2 if (i > 0 and j == 0) else 1
                    )
                )
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn_final = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.relu(self.bn_final(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def pyramidnet110(
    num_classes: int = 100, alpha: float = 270, in_channels: int = 3
) -> PyramidNet:
    """PyramidNet-110 (alpha 270, basic blocks): 28.3M parameters at 100
    classes."""
    return PyramidNet(110, alpha, num_classes, in_channels)

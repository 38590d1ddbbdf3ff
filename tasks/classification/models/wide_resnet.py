"""WideResNet-d-k (Zagoruyko & Komodakis 2016), pre-activation blocks, for
32x32 inputs."""

from __future__ import annotations

import torch
from torch import nn

from .weight_init import init_conv_bn

__all__ = ['WideResNet', 'wide_resnet28_10']


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 with a 1x1 projection when the
    shape changes."""

    def __init__(
        self, in_ch: int, out_ch: int, stride: int, dropout: float = 0.0
    ):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(
            in_ch, out_ch, 3, stride=stride, padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(
            out_ch, out_ch, 3, stride=1, padding=1, bias=False
        )
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(
                in_ch, out_ch, 1, stride=stride, bias=False
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        # The projection sees the pre-activated input, as in the reference WRN
        # code.
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + identity


class WideResNet(nn.Module):
    def __init__(
        self,
        depth: int = 28,
        widen_factor: int = 10,
        num_classes: int = 10,
        dropout: float = 0.0,
        in_channels: int = 3,
    ):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(
                f'WideResNet depth must be 6n+4 (e.g. 16, 22, 28, 40), got '
                f'{depth}'
            )
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(
            in_channels, widths[0], 3, padding=1, bias=False
        )
        stages, in_ch = [], widths[0]
        for i, width in enumerate(widths[1:]):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(WideBasicBlock(in_ch, width, stride, dropout))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_conv_bn(self, zero_linear_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.relu(self.bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def wide_resnet28_10(
    num_classes: int = 10, dropout: float = 0.0, in_channels: int = 3
) -> WideResNet:
    """WRN-28-10: 36.5M parameters at 10 classes."""
    return WideResNet(28, 10, num_classes, dropout, in_channels)

"""Small CIFAR ResNet (He et al. 2016, section 4.2): depth 6n+2, three stages.

``width`` scales the stage widths (16, 32, 64) * width / 16, so
``cifar_resnet(20, 8)`` is a narrow ResNet-20 that trains in minutes on a CPU:
the model of the tests, demo and CPU benchmarks.
"""

from __future__ import annotations

import torch
from torch import nn

from .resnet import BasicBlock
from .weight_init import init_conv_bn

__all__ = ['CifarResNet', 'cifar_resnet']


class CifarResNet(nn.Module):
    def __init__(
        self,
        depth: int = 20,
        width: int = 16,
        num_classes: int = 10,
        in_channels: int = 3,
    ):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(
                f'CIFAR ResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, '
                f'56), got {depth}'
            )
        if width < 1:
            raise ValueError(f'CIFAR ResNet width must be >= 1, got {width}')
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages, in_ch = [], width
        for i, w in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(n):
                blocks.append(
                    BasicBlock(in_ch, w, 2 if (i > 0 and j == 0) else 1)
                )
                in_ch = w
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cifar_resnet(
    depth: int = 20,
    width: int = 16,
    num_classes: int = 10,
    in_channels: int = 3,
) -> CifarResNet:
    """ResNet-{depth} for 32x32 inputs; depth 20, width 16 is the original
    ResNet-20 (0.27M parameters)."""
    return CifarResNet(depth, width, num_classes, in_channels)

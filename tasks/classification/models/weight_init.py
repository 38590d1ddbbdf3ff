"""The weight initialisation every network of this package uses."""

from torch import nn


def init_conv_bn(model: nn.Module, zero_linear_bias: bool = False) -> None:
    """He (fan-out) init for convolutions, identity BatchNorm; optionally zero
    linear biases (WideResNet's reference code does)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(
                m.weight, mode='fan_out', nonlinearity='relu'
            )
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif zero_linear_bias and isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)

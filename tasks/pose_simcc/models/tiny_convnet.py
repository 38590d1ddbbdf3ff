"""A small strided CNN backbone for tests and CPU smoke runs."""

from torch import nn

from ..registry import MODELS


@MODELS.register_module()
class TinyConvNet(nn.Module):
    """``num_stages`` conv-BN-ReLU blocks, each halving the resolution.

    ``forward`` returns a one-element tuple with the feature map of shape
    (B, channels[-1], H / 2**num_stages, W / 2**num_stages).
    """

    def __init__(self, channels=(16, 32, 64), in_channels=3):
        super().__init__()
        layers = []
        for out in channels:
            layers += [
                nn.Conv2d(
                    in_channels, out, 3, stride=2, padding=1, bias=False
                ),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.Conv2d(out, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            in_channels = out
        self.body = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, x):
        return (self.body(x),)

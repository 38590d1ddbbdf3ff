"""torchvision ResNet as a pose backbone (stride-32 feature map)."""

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet

from ..registry import MODELS

_ARCHS = {
    18: resnet.resnet18,
    34: resnet.resnet34,
    50: resnet.resnet50,
    101: resnet.resnet101,
    152: resnet.resnet152,
}


@MODELS.register_module()
class ResNet(nn.Module):
    """torchvision ResNet without the pooling and classifier.

    Args:
        depth: 18, 34, 50, 101 or 152.
        checkpoint: optional path to a torchvision state dict (e.g. the
            ImageNet ``resnet50-*.pth``) loaded at construction. Nothing is
            downloaded.

    ``forward`` returns a one-element tuple with the last feature map of shape
    (B, C, H/32, W/32), C = 512 (depth 18/34) or 2048 (50+).
    """

    def __init__(self, depth=50, checkpoint=None):
        super().__init__()
        if depth not in _ARCHS:
            raise ValueError(
                f'ResNet depth={depth!r} is not supported; use one '
                f'of {sorted(_ARCHS)}'
            )
        net = _ARCHS[depth](weights=None)
        if checkpoint is not None:
            if not Path(checkpoint).is_file():
                raise FileNotFoundError(
                    f'ResNet checkpoint {checkpoint} does not exist; download '
                    f"torchvision's resnet{depth} ImageNet weights there or "
                    f'set '
                    'model.backbone.checkpoint=None'
                )
            state = torch.load(
                checkpoint, map_location='cpu', weights_only=True
            )
            state = {k: v for k, v in state.items() if not k.startswith('fc.')}
            missing, _ = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith('fc.')]
            if missing:
                raise ValueError(
                    f'ResNet checkpoint {checkpoint} is missing '
                    f'{len(missing)} weights, e.g. {missing[:3]}; '
                    f'pass a torchvision resnet{depth} state dict'
                )
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2 = net.layer1, net.layer2
        self.layer3, self.layer4 = net.layer3, net.layer4
        self.out_channels = 512 if depth < 50 else 2048

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return (x,)

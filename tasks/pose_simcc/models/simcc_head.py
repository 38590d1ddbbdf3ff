"""SimCC head: keypoint coordinates as two 1-D classifications (x and y)."""

from torch import nn

from ..registry import MODELS


@MODELS.register_module()
class SimCCHead(nn.Module):
    """Optional deconv stack, a 1x1 conv to K channels, then two linear
    classifiers.

    Args:
        in_channels: channels of the backbone's last feature map.
        out_channels: number of keypoints K.
        input_size: network input (w, h).
        in_featuremap_size: backbone feature map (w, h), e.g. input_size // 32.
        simcc_split_ratio: bins per input pixel; x has round(w * ratio) bins.
        deconv_out_channels: channels of each 4x4 stride-2 deconv layer, or
            None for none (mmpose's MPII recipe uses none).

    ``forward(feats)`` takes the backbone's tuple and returns (pred_x, pred_y)
    of shapes (B, K, Wx) and (B, K, Wy).
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        input_size,
        in_featuremap_size,
        simcc_split_ratio=2.0,
        deconv_out_channels=None,
    ):
        super().__init__()
        fw, fh = in_featuremap_size
        layers = []
        for ch in deconv_out_channels or ():
            layers += [
                nn.ConvTranspose2d(
                    in_channels, ch, 4, stride=2, padding=1, bias=False
                ),
                nn.BatchNorm2d(ch),
                nn.ReLU(inplace=True),
            ]
            in_channels = ch
            fw, fh = fw * 2, fh * 2
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(in_channels, out_channels, 1)
        self.in_featuremap_size = tuple(in_featuremap_size)
        num_x = int(round(input_size[0] * simcc_split_ratio))
        num_y = int(round(input_size[1] * simcc_split_ratio))
        self.mlp_head_x = nn.Linear(fw * fh, num_x)
        self.mlp_head_y = nn.Linear(fw * fh, num_y)

    def forward(self, feats):
        x = feats[-1]
        expected = tuple(self.in_featuremap_size[::-1])
        if tuple(x.shape[-2:]) != expected:
            raise ValueError(
                f'SimCCHead got a {tuple(x.shape[-2:])} (h, w) feature map '
                f'but '
                f'in_featuremap_size={self.in_featuremap_size} (w, h); set it '
                f'to '
                'input_size divided by the backbone stride'
            )
        x = self.final_layer(self.deconv_layers(x)).flatten(2)
        return self.mlp_head_x(x), self.mlp_head_y(x)

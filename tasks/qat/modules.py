"""Convolution and linear layers that fake-quantize their weight and input."""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .quantizers import FakeQuantizer


class QuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight and input pass through fake quantizers.

    It shares the float layer's ``weight``/``bias`` parameters, so state_dict
    keys of the float model stay valid; the quantizers add
    ``weight_quantizer.*`` and ``input_quantizer.*`` entries.
    """

    weight_quantizer: FakeQuantizer
    input_quantizer: Optional[FakeQuantizer]

    @classmethod
    def from_float(
        cls,
        conv: nn.Conv2d,
        weight_quantizer: FakeQuantizer,
        input_quantizer: Optional[FakeQuantizer],
    ):
        if conv.padding_mode != 'zeros':
            raise ValueError(
                'QuantConv2d supports padding_mode="zeros" only, '
                f'got {conv.padding_mode!r}'
            )
        q = cls.__new__(cls)
        nn.Module.__init__(q)
        for attr in (
            'in_channels',
            'out_channels',
            'kernel_size',
            'stride',
            'padding',
            'dilation',
            'transposed',
            'output_padding',
            'groups',
            'padding_mode',
            '_reversed_padding_repeated_twice',
        ):
            setattr(q, attr, getattr(conv, attr))
        q.weight = conv.weight
        q.bias = conv.bias
        q.weight_quantizer = weight_quantizer
        q.input_quantizer = input_quantizer
        q.train(conv.training)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return self._conv_forward(
            x, self.weight_quantizer(self.weight), self.bias
        )


class QuantLinear(nn.Linear):
    """``nn.Linear`` whose weight and input pass through fake quantizers."""

    weight_quantizer: FakeQuantizer
    input_quantizer: Optional[FakeQuantizer]

    @classmethod
    def from_float(
        cls,
        linear: nn.Linear,
        weight_quantizer: FakeQuantizer,
        input_quantizer: Optional[FakeQuantizer],
    ):
        q = cls.__new__(cls)
        nn.Module.__init__(q)
        q.in_features = linear.in_features
        q.out_features = linear.out_features
        q.weight = linear.weight
        q.bias = linear.bias
        q.weight_quantizer = weight_quantizer
        q.input_quantizer = input_quantizer
        q.train(linear.training)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizer is not None:
            x = self.input_quantizer(x)
        return F.linear(x, self.weight_quantizer(self.weight), self.bias)


QUANT_LAYERS = (QuantConv2d, QuantLinear)

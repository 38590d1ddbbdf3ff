"""Integer check: run a quantized model with true integer weights.

:func:`convert_to_integer` replaces each fake-quantized layer by one that
stores its weight as ``int8`` codes plus per-channel scales, quantizes its
input to integer codes, accumulates integer x integer products exactly
(float64 holds every partial sum of these sizes exactly) and rescales once:
``y = (s_in * s_w[c]) * sum(q_in * q_w) + bias``. If this matches the
fake-quant model, the fake-quant weights really are ``s_w[c] * q_w`` with
``q_w`` on the 2^b-level grid.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .modules import QuantConv2d, QuantLinear
from .quantizers import FakeQuantizer, MinMaxQuantizer


def _weight_codes(layer) -> tuple:
    wq: FakeQuantizer = layer.weight_quantizer
    w = layer.weight.detach()
    if (
        isinstance(wq, MinMaxQuantizer)
        and wq.momentum >= 1.0
        and wq.observer_enabled
    ):
        wq.observe(w)  # weight grids follow the current weights
    codes = wq.quantize_to_int(w)
    qmin, qmax = wq.qrange
    if qmin < -128 or qmax > 127:
        raise ValueError(f'{wq.bits}-bit weights do not fit in int8')
    return codes.to(torch.int8), wq.get_scale().clone(), (qmin, qmax)


class _IntegerLayer(nn.Module):
    def __init__(self, layer):
        super().__init__()
        codes, scale, qrange = _weight_codes(layer)
        self.register_buffer('weight_int', codes)
        self.register_buffer('weight_scale', scale)
        self.weight_qrange = qrange
        bias = None if layer.bias is None else layer.bias.detach().clone()
        self.register_buffer('bias', bias)
        aq = layer.input_quantizer
        self.input_quantizer = None
        if aq is not None:
            self.input_quantizer = copy.deepcopy(aq)
            self.input_quantizer.observer_enabled = False

    def _input_codes(self, x: torch.Tensor):
        if self.input_quantizer is None:
            return x.double(), torch.ones((), dtype=torch.float64)
        codes = self.input_quantizer.quantize_to_int(x.double())
        return codes, self.input_quantizer.get_scale().double()

    def _finish(self, acc, in_scale, channel_dim, dtype):
        shape = [1] * acc.dim()
        shape[channel_dim] = -1
        y = acc * (in_scale * self.weight_scale.double()).reshape(shape)
        if self.bias is not None:
            y = y + self.bias.double().reshape(shape)
        return y.to(dtype)


class IntegerConv2d(_IntegerLayer):
    """Conv with int8 weight codes; see the module docstring."""

    def __init__(self, layer: QuantConv2d):
        super().__init__(layer)
        self.stride, self.padding = layer.stride, layer.padding
        self.dilation, self.groups = layer.dilation, layer.groups

    def forward(self, x):
        codes, in_scale = self._input_codes(x)
        acc = F.conv2d(
            codes,
            self.weight_int.double(),
            None,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
        return self._finish(acc, in_scale, 1, x.dtype)


class IntegerLinear(_IntegerLayer):
    """Linear layer with int8 weight codes; see the module docstring."""

    def forward(self, x):
        codes, in_scale = self._input_codes(x)
        acc = F.linear(codes, self.weight_int.double())
        return self._finish(acc, in_scale, -1, x.dtype)


@torch.no_grad()
def convert_to_integer(model: nn.Module) -> nn.Module:
    """A copy of the fake-quantized ``model`` (in eval mode) whose quantized
    layers compute with integer codes. The original is left unchanged."""
    model = copy.deepcopy(model).eval()
    for name, m in list(model.named_modules()):
        if isinstance(m, QuantConv2d):
            new = IntegerConv2d(m)
        elif isinstance(m, QuantLinear):
            new = IntegerLinear(m)
        else:
            continue
        model.set_submodule(name, new)
    return model


def integer_weight_levels(model: nn.Module) -> dict:
    """``{layer name: max number of distinct integer codes in one output
    channel}`` for every integer layer of a converted model."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, _IntegerLayer):
            w = m.weight_int.reshape(m.weight_int.shape[0], -1)
            out[name] = max(int(torch.unique(row).numel()) for row in w)
    return out

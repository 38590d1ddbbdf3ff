"""Turning a float model into a fake-quantized one, and calibrating it."""

import contextlib
import fnmatch
import re
from typing import Callable, Iterable, List, Optional, Sequence

import torch
from torch import nn

from .modules import QUANT_LAYERS, QuantConv2d, QuantLinear
from .quantizers import (
    QUANTIZERS,
    FakeQuantizer,
    MinMaxQuantizer,
    build_quantizer,
)

# Parameter names of the quantizers themselves (LSQ step sizes) match this.
QUANTIZER_PARAM_PATTERN = r'_quantizer\.'


def quantizable_layers(
    model: nn.Module, skip: Sequence[str] = ()
) -> List[str]:
    """Names of the ``nn.Conv2d``/``nn.Linear`` layers, in registration order
    (for the classification models this is also execution order: the stem
    conv comes first and the classifier's ``fc`` last)."""
    names = []
    for name, m in model.named_modules():
        if isinstance(m, QUANT_LAYERS) or not isinstance(
            m, (nn.Conv2d, nn.Linear)
        ):
            continue
        if any(fnmatch.fnmatchcase(name, pat) for pat in skip):
            continue
        names.append(name)
    return names


def quantize_model(
    model: nn.Module,
    w_bits: int = 4,
    a_bits: Optional[int] = 4,
    quantizer: str = 'minmax',
    first_last_bits: Optional[int] = 8,
    fold_bn: bool = False,
    act_momentum: float = 0.01,
    skip: Sequence[str] = (),
    perturb_quantizer_params: bool = False,
) -> nn.Module:
    """Replace every conv/linear layer of ``model`` (in place) by its
    fake-quantized version and return the model.

    Args:
        w_bits: weight bits (per output channel, symmetric, signed).
        a_bits: bits of each quantized layer's input; None quantizes weights
            only. The sign of each input is decided on the first batch
            (unsigned after ReLU, signed where values are negative, e.g. the
            normalised image).
        quantizer: 'minmax' (Jacob et al. 2018) or 'lsq' (Esser et al. 2020).
        first_last_bits: weight and input bits of the first and the last
            quantized layer; None uses ``w_bits``/``a_bits`` there too.
        fold_bn: fold each BatchNorm that directly follows a conv into that
            conv (running statistics; the BN becomes ``nn.Identity``) before
            quantizing. Off by default: BatchNorm stays unfolded and trains.
        act_momentum: moving-average weight of the activation observers
            ('minmax' only).
        skip: fnmatch patterns of layer names left in float.
        perturb_quantizer_params: let SAM/AUSAM perturb the quantizers' own
            parameters (LSQ step sizes). Default False: the perturbation
            touches the weights (and BN affine parameters) only; the step
            sizes are still trained by the base optimizer.
    """
    if quantizer not in QUANTIZERS:
        raise ValueError(
            f'quantizer must be one of {sorted(QUANTIZERS)}, got {quantizer!r}'
        )
    if fold_bn:
        fold_batchnorm(model)
    names = quantizable_layers(model, skip)
    if not names:
        raise ValueError(
            'quantize_model found no nn.Conv2d or nn.Linear '
            'layer to quantize (check `skip`)'
        )
    edge = {names[0], names[-1]}
    for name in names:
        layer = model.get_submodule(name)
        wb, ab = w_bits, a_bits
        if name in edge and first_last_bits is not None:
            wb, ab = (
                first_last_bits,
                (first_last_bits if a_bits is not None else None),
            )
        out_ch = (
            layer.out_channels
            if isinstance(layer, nn.Conv2d)
            else layer.out_features
        )
        wq = build_quantizer(
            quantizer,
            wb,
            signed=True,
            num_channels=out_ch,
            is_weight=True,
            sam_perturb=perturb_quantizer_params,
        )
        aq = (
            None
            if ab is None
            else build_quantizer(
                quantizer,
                ab,
                signed=None,
                is_weight=False,
                act_momentum=act_momentum,
                sam_perturb=perturb_quantizer_params,
            )
        )
        if isinstance(layer, nn.Conv2d):
            qlayer = QuantConv2d.from_float(layer, wq, aq)
        else:
            qlayer = QuantLinear.from_float(layer, wq, aq)
        model.set_submodule(name, qlayer.to(layer.weight.device))
    return model


def quantizers(model: nn.Module) -> Iterable[FakeQuantizer]:
    return (m for m in model.modules() if isinstance(m, FakeQuantizer))


def quantizer_parameter_names(model: nn.Module) -> List[str]:
    """Names of the quantizers' own parameters (LSQ step sizes)."""
    return [
        n
        for n, _ in model.named_parameters()
        if re.search(QUANTIZER_PARAM_PATTERN, n)
    ]


def is_calibrated(model: nn.Module) -> bool:
    """True when every quantizer has a range/step (e.g. from a checkpoint)."""
    qs = list(quantizers(model))
    return bool(qs) and all(q.is_initialized for q in qs)


@contextlib.contextmanager
def calibration_mode(model: nn.Module):
    """Eval mode (BatchNorm uses its running statistics), no gradients, and
    the observers average the range over the batches seen inside."""
    was_training = model.training
    qs = list(quantizers(model))
    model.eval()
    for q in qs:
        q.calibrating = True
        if isinstance(q, MinMaxQuantizer):
            q._calib_batches = 0
    try:
        with torch.no_grad():
            yield model
    finally:
        for q in qs:
            q.calibrating = False
        model.train(was_training)


def calibrate(
    model: nn.Module,
    batches: Iterable,
    forward: Optional[Callable] = None,
    num_batches: Optional[int] = None,
) -> int:
    """Set the quantizers' ranges/steps from ``batches`` (see
    :func:`calibration_mode`). ``forward(model, batch)`` runs one batch; by
    default ``model(batch)``. Returns the number of batches used."""
    forward = forward or (lambda m, b: m(b))
    n = 0
    with calibration_mode(model):
        for batch in batches:
            if num_batches is not None and n >= num_batches:
                break
            forward(model, batch)
            n += 1
    if n == 0:
        raise ValueError('calibrate got no batches')
    return n


# --------------------------------------------------------------------------
# BatchNorm folding (optional)


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm):
    """Fold ``bn`` (running statistics) into ``conv``'s weight and bias."""
    if bn.running_var is None:
        raise ValueError(
            'cannot fold a BatchNorm without running statistics '
            '(track_running_stats=False)'
        )
    std = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    factor = gamma / std
    conv.weight.mul_(factor.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(std)
    new_bias = beta + (bias - bn.running_mean) * factor
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d whose input is a Conv2d output used nowhere else.

    The pairs are found by tracing with ``torch.fx``; a module that cannot be
    traced (e.g. a model whose forward takes a ``mode`` string) is searched
    through its children instead. Returns the number of folded pairs.
    """
    import torch.fx as fx

    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 -- untraceable: look one level down
        return sum(fold_batchnorm(child) for child in model.children())
    folded = 0
    for node in graph.nodes:
        if node.op != 'call_module':
            continue
        bn = model.get_submodule(node.target)
        if not isinstance(bn, nn.BatchNorm2d) or not node.args:
            continue
        src = node.args[0]
        if (
            not isinstance(src, fx.Node)
            or src.op != 'call_module'
            or len(src.users) != 1
        ):
            continue
        conv = model.get_submodule(src.target)
        if type(conv) is not nn.Conv2d:
            continue
        fold_conv_bn(conv, bn)
        model.set_submodule(node.target, nn.Identity())
        folded += 1
    return folded

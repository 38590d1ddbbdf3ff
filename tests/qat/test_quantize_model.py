"""quantize_model on the classification task's ResNet-18 and MobileNetV1:
which layers get which bits, weight levels, the integer check, state_dict
round trips and BatchNorm folding."""

import copy

import pytest
import torch
from torch import nn

from tasks.classification.models import mobilenet_v1, resnet18
from tasks.qat import (
    QUANTIZER_PARAM_PATTERN,
    QuantConv2d,
    QuantLinear,
    calibrate,
    convert_to_integer,
    fold_batchnorm,
    integer_weight_levels,
    is_calibrated,
    quantize_model,
    quantizer_parameter_names,
    quantizers,
)
from tasks.qat.integer import IntegerConv2d, IntegerLinear


def _models():
    return {
        'resnet18': lambda: resnet18(num_classes=10),
        'mobilenet_v1': lambda: mobilenet_v1(num_classes=10, first_stride=1),
    }


def _quantized(arch, quantizer='minmax', seed=0, **kw):
    torch.manual_seed(seed)
    model = _models()[arch]()
    quantize_model(model, 4, 4, quantizer=quantizer, **kw)
    calibrate(model, [torch.randn(2, 3, 32, 32)])
    return model


def _quant_layers(model):
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, (QuantConv2d, QuantLinear))
    ]


@pytest.mark.parametrize('arch', ['resnet18', 'mobilenet_v1'])
def test_every_conv_and_linear_is_quantized_first_last_at_8_bit(arch):
    model = _quantized(arch)
    assert not [
        n
        for n, m in model.named_modules()
        if type(m) in (nn.Conv2d, nn.Linear)
    ]
    layers = _quant_layers(model)
    first, last = layers[0][1], layers[-1][1]
    assert isinstance(last, QuantLinear)
    for _, m in (layers[0], layers[-1]):
        assert m.weight_quantizer.bits == 8 and m.input_quantizer.bits == 8
    for _, m in layers[1:-1]:
        assert m.weight_quantizer.bits == 4 and m.input_quantizer.bits == 4
    # The normalised image can be negative: signed. Everything else follows
    # a ReLU (or the average of ReLU outputs): unsigned.
    assert first.input_quantizer.signed
    assert not any(m.input_quantizer.signed for _, m in layers[1:])
    assert all(m.weight_quantizer.signed for _, m in layers)


def test_first_last_bits_none_quantizes_them_like_the_rest():
    model = _quantized('resnet18', first_last_bits=None)
    assert {m.weight_quantizer.bits for _, m in _quant_layers(model)} == {4}


def test_skip_leaves_layers_in_float():
    model = resnet18(num_classes=10)
    quantize_model(model, 4, 4, skip=['fc'])
    assert type(model.fc) is nn.Linear
    # with fc skipped, the last quantized layer (8 bit) is the last conv
    assert _quant_layers(model)[-1][1].weight_quantizer.bits == 8


@pytest.mark.parametrize('arch', ['resnet18', 'mobilenet_v1'])
@pytest.mark.parametrize('quantizer', ['minmax', 'lsq'])
def test_w4_weights_take_at_most_16_values_per_channel(arch, quantizer):
    model = _quantized(arch, quantizer)
    model.eval()
    for name, m in _quant_layers(model):
        if m.weight_quantizer.bits != 4:
            continue
        wq = m.weight_quantizer(m.weight).detach()
        wq = wq.reshape(wq.shape[0], -1)
        for row in wq:
            assert torch.unique(row).numel() <= 16, name


@pytest.mark.parametrize(
    'arch,quantizer', [('resnet18', 'minmax'), ('mobilenet_v1', 'lsq')]
)
def test_integer_model_matches_fake_quant(arch, quantizer):
    model = _quantized(arch, quantizer).eval()
    x = torch.randn(2, 3, 32, 32)
    integer = convert_to_integer(model)
    # int8 weight codes with 16 (W4) or 256 (first/last, 8 bit) levels
    levels = integer_weight_levels(integer)
    ints = [
        (n, m)
        for n, m in integer.named_modules()
        if isinstance(m, (IntegerConv2d, IntegerLinear))
    ]
    assert len(ints) == len(_quant_layers(model))
    for n, m in ints:
        assert m.weight_int.dtype == torch.int8
        lo, hi = m.weight_qrange
        assert int(m.weight_int.min()) >= lo and int(m.weight_int.max()) <= hi
        assert levels[n] <= hi - lo + 1
    assert max(levels[n] for n, m in ints[1:-1]) <= 16
    # float64 on both sides: integer accumulation is exact, so any mismatch
    # would be a real difference between the two models.
    expected = copy.deepcopy(model).double()(x.double())
    got = convert_to_integer(copy.deepcopy(model).double())(x.double())
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9)
    # In float32 the fake-quant weights are exactly code * scale. (Whole-model
    # float32 outputs can differ where float rounding flips a later rounding.)
    for (n, m), (_, im) in zip(_quant_layers(model), ints):
        shape = (-1,) + (1,) * (m.weight.dim() - 1)
        assert torch.equal(
            m.weight_quantizer(m.weight),
            im.weight_int.float() * im.weight_scale.reshape(shape),
        ), n


def _small_mobilenet():
    return mobilenet_v1(num_classes=10, first_stride=1, width_mult=0.25)


@pytest.mark.parametrize('quantizer', ['minmax', 'lsq'])
def test_state_dict_round_trip(quantizer):
    torch.manual_seed(1)
    model = quantize_model(_small_mobilenet(), 4, 4, quantizer=quantizer)
    calibrate(model, [torch.randn(2, 3, 32, 32)])
    model.train()
    model(torch.randn(4, 3, 32, 32))  # move the moving averages a bit
    state = model.state_dict()
    assert any('input_quantizer' in k for k in state)
    fresh = _small_mobilenet()
    quantize_model(fresh, 4, 4, quantizer=quantizer)
    assert not is_calibrated(fresh)
    fresh.load_state_dict(state, strict=True)
    assert is_calibrated(fresh)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    fresh.eval()
    assert torch.equal(model(x), fresh(x))
    assert [int(q.sign) for q in quantizers(model)] == [
        int(q.sign) for q in quantizers(fresh)
    ]


def test_float_state_dict_loads_into_quantized_model():
    float_model = resnet18(num_classes=10)
    model = copy.deepcopy(float_model)
    quantize_model(model, 4, 4)
    missing, unexpected = model.load_state_dict(
        float_model.state_dict(), strict=False
    )
    assert not unexpected
    assert all('_quantizer.' in k for k in missing)


def test_quantizer_parameters_are_named_by_the_pattern():
    import re

    minmax = resnet18(num_classes=10)
    quantize_model(minmax, 4, 4, quantizer='minmax')
    assert quantizer_parameter_names(minmax) == []
    lsq = resnet18(num_classes=10)
    quantize_model(lsq, 4, 4, quantizer='lsq')
    names = quantizer_parameter_names(lsq)
    assert len(names) == 2 * len(_quant_layers(lsq))
    weights = [
        n
        for n, _ in lsq.named_parameters()
        if not re.search(QUANTIZER_PARAM_PATTERN, n)
    ]
    assert len(weights) == len(list(resnet18(num_classes=10).parameters()))


def test_fold_batchnorm_keeps_eval_outputs():
    torch.manual_seed(0)
    model = resnet18(num_classes=10)
    model.train()
    model(torch.randn(4, 3, 32, 32))  # non-trivial running statistics
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert fold_batchnorm(model) == n_bn
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(model(x), expected, rtol=1e-4, atol=1e-4)


def test_quantize_with_fold_bn_passes_integer_check():
    torch.manual_seed(0)
    model = _small_mobilenet()
    quantize_model(model, 4, 4, fold_bn=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    calibrate(model, [torch.randn(4, 3, 32, 32)])
    model.eval()
    x = torch.randn(2, 3, 32, 32).double()
    expected = copy.deepcopy(model).double()(x)
    got = convert_to_integer(copy.deepcopy(model).double())(x)
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_quantize_model_errors():
    with pytest.raises(ValueError, match='quantizer'):
        quantize_model(resnet18(), quantizer='pact')
    with pytest.raises(ValueError, match='no nn.Conv2d'):
        quantize_model(nn.Sequential(nn.ReLU()))


def test_calibration_keeps_batchnorm_statistics_and_training_flag():
    torch.manual_seed(0)
    model = quantize_model(_small_mobilenet(), 4, 4)
    model.train()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    mean_before = bn.running_mean.clone()
    n = calibrate(
        model, [torch.randn(2, 3, 32, 32) for _ in range(3)], num_batches=2
    )
    assert n == 2 and model.training and is_calibrated(model)
    assert torch.equal(bn.running_mean, mean_before)


def test_calibration_averages_batch_ranges():
    from tasks.qat import MinMaxQuantizer

    q = MinMaxQuantizer(4, signed=False, momentum=0.01)
    calibrate(q, [torch.tensor([0.0, 1.0]), torch.tensor([0.0, 3.0])])
    assert q.max_val.item() == pytest.approx(2.0)  # mean of 1 and 3


def test_second_pass_freezes_activation_observers():
    from ausam_tasks.perturb import second_pass

    torch.manual_seed(0)
    model = quantize_model(_small_mobilenet(), 4, 4)
    calibrate(model, [torch.randn(2, 3, 32, 32)])
    model.train()
    acts = [m.input_quantizer for _, m in _quant_layers(model)]
    before = [q.max_val.clone() for q in acts]
    with second_pass(model):
        model(torch.randn(2, 3, 32, 32) * 5)
    assert all(torch.equal(a, q.max_val) for a, q in zip(before, acts))
    model(torch.randn(2, 3, 32, 32) * 5)
    assert not all(torch.equal(a, q.max_val) for a, q in zip(before, acts))


@pytest.mark.parametrize('perturb_quantizer_params', [False, True])
def test_sam_perturbs_lsq_step_sizes_only_when_asked(perturb_quantizer_params):
    from ausam_tasks import SAM, StepContext
    from ausam_tasks.perturb import perturbed

    torch.manual_seed(0)
    model = quantize_model(
        _small_mobilenet(),
        4,
        4,
        quantizer='lsq',
        perturb_quantizer_params=perturb_quantizer_params,
    )
    calibrate(model, [torch.randn(2, 3, 32, 32)])
    model.train()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.5)
    loss = nn.functional.cross_entropy(
        model(torch.randn(4, 3, 32, 32)), torch.arange(4)
    )
    loss.backward()
    params = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    moving = sam.perturbable()
    with perturbed(moving, sam.epsilon(moving, StepContext())):
        moved = {n for n, p in params.items() if not torch.equal(p, before[n])}
    names = quantizer_parameter_names(model)
    assert moved & set(params) - set(names)  # weights moved
    if perturb_quantizer_params:
        assert moved & set(names)
    else:
        assert not moved & set(names)


def test_sam_step_updates_activation_ranges_in_the_first_pass_only():
    """The core's second pass enters each quantizer's sam_second_pass()."""
    from ausam_tasks.sam import SAM

    torch.manual_seed(0)
    model = quantize_model(_small_mobilenet(), 4, 4)
    calibrate(model, [torch.randn(2, 3, 32, 32)])
    model.train()
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    reference = copy.deepcopy(model)
    reference(x)  # one observation at w
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.0), rho=0.5)
    sam.step(
        lambda pos: {
            'loss': nn.functional.cross_entropy(model(x), y, reduction='none')
        },
        model=model,
    )
    for (n, m), (_, r) in zip(_quant_layers(model), _quant_layers(reference)):
        assert torch.equal(
            m.input_quantizer.max_val, r.input_quantizer.max_val
        ), n

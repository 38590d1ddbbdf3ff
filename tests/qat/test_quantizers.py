"""Fake quantizers: grid size, forward values and STE gradients against
independent computations."""

import math

import pytest
import torch

from tasks.qat import (
    LSQQuantizer,
    MinMaxQuantizer,
    build_quantizer,
    quant_range,
)


def _calibrated_minmax(bits, signed, data):
    q = MinMaxQuantizer(bits, signed=signed, momentum=0.5)
    q.observe(data)
    q.eval()
    return q


@pytest.mark.parametrize('bits', [2, 3, 4, 8])
@pytest.mark.parametrize('signed', [True, False])
def test_minmax_produces_exactly_2_to_the_b_levels(bits, signed):
    q = _calibrated_minmax(bits, signed, torch.linspace(-1, 1, 101))
    # Inputs wider than the calibrated range hit both ends of the grid.
    y = q(torch.linspace(-3, 3, 20001))
    assert torch.unique(y).numel() == 2**bits
    qmin, qmax = quant_range(bits, signed)
    codes = torch.unique(y / q.get_scale())
    assert torch.allclose(
        codes, torch.arange(qmin, qmax + 1).float(), atol=1e-4
    )


@pytest.mark.parametrize('signed', [True, False])
def test_minmax_scale_and_values_match_formula(signed):
    data = torch.tensor([-0.5, 0.1, 2.0])
    q = _calibrated_minmax(4, signed, data)
    expected_scale = 2.0 / 7 if signed else 2.0 / 15
    assert q.get_scale().item() == pytest.approx(expected_scale)
    x = torch.randn(1000) * 2
    lo, hi = (-8, 7) if signed else (0, 15)
    expected = (
        torch.clamp(torch.round(x / expected_scale), lo, hi) * expected_scale
    )
    assert torch.allclose(q(x), expected, atol=1e-6)


def test_minmax_ste_gradient_is_one_inside_zero_outside():
    q = _calibrated_minmax(4, True, torch.tensor([-1.0, 1.0]))
    s = 1.0 / 7
    x = (torch.rand(2000) * 4 - 2).requires_grad_()
    upstream = torch.randn(2000)
    q(x).backward(upstream)
    inside = (x.detach() >= -8 * s) & (x.detach() <= 7 * s)
    assert torch.equal(x.grad, upstream * inside)


def test_moving_average_observer():
    q = MinMaxQuantizer(8, signed=True, momentum=0.1)
    q.train()
    q(torch.tensor([-1.0, 2.0]))  # first batch sets the range directly
    q(torch.tensor([-3.0, 4.0]))
    assert q.min_val.item() == pytest.approx(-1.0 + 0.1 * (-3.0 + 1.0))
    assert q.max_val.item() == pytest.approx(2.0 + 0.1 * (4.0 - 2.0))
    q.eval()  # eval: the range is frozen
    q(torch.tensor([-100.0, 100.0]))
    assert q.max_val.item() == pytest.approx(2.2)


def test_per_channel_weight_quantizer_uses_each_channels_range():
    w = torch.randn(6, 3, 3, 3) * torch.arange(1, 7).reshape(6, 1, 1, 1)
    q = build_quantizer(
        'minmax', 4, signed=True, num_channels=6, is_weight=True
    )
    y = q(w)
    amax = w.abs().amax(dim=(1, 2, 3))
    assert torch.allclose(q.get_scale(), amax / 7)
    for c in range(6):
        assert torch.unique(y[c]).numel() <= 16
        codes = y[c] / (amax[c] / 7)
        assert torch.allclose(codes, codes.round(), atol=1e-4)


@pytest.mark.parametrize('bits', [2, 4])
@pytest.mark.parametrize('signed', [True, False])
def test_lsq_levels_and_init(bits, signed):
    q = LSQQuantizer(bits, signed=signed)
    q.train()
    x = torch.randn(64, 8)
    q(x)
    qmax = quant_range(bits, signed)[1]
    assert q.scale.item() == pytest.approx(
        2 * x.abs().mean().item() / math.sqrt(qmax), rel=1e-5
    )
    y = q(torch.linspace(-50, 50, 10001))
    assert torch.unique(y).numel() == 2**bits


def test_lsq_gradients_match_the_paper():
    """Esser et al. 2020, Eq. 3 and the gradient scale g = 1/sqrt(N Q_p)."""
    torch.manual_seed(0)
    q = LSQQuantizer(4, signed=True, batch_axis=0)
    q.train()
    x = torch.randn(16, 10)
    q(x)  # initialise
    with torch.no_grad():
        q.scale.fill_(0.3)
    x = (torch.randn(16, 10) * 2).requires_grad_()
    upstream = torch.randn(16, 10)
    q(x).backward(upstream)

    s, qmin, qmax = 0.3, -8, 7
    v = x.detach() / s
    inside = (v > qmin) & (v < qmax)
    d_s = torch.where(
        inside,
        -v + torch.round(v),
        torch.where(
            v <= qmin, torch.tensor(float(qmin)), torch.tensor(float(qmax))
        ),
    )
    g = 1 / math.sqrt(10 * qmax)  # N = features per sample
    assert q.scale.grad.item() == pytest.approx(
        (upstream * d_s).sum().item() * g, rel=1e-4
    )
    # x / s * s is 1 up to float rounding
    assert torch.allclose(
        x.grad, upstream * ((v >= qmin) & (v <= qmax)), rtol=1e-6, atol=0
    )


def test_lsq_per_channel_weight_gradient_scale():
    q = build_quantizer('lsq', 4, signed=True, num_channels=4, is_weight=True)
    q.train()
    w = torch.randn(4, 2, 3, 3)
    q(w)
    with torch.no_grad():
        q.scale.fill_(0.25)
    q(w).sum().backward()
    v = w / 0.25
    d_s = torch.where(
        (v > -8) & (v < 7), torch.round(v) - v, v.clamp(-8, 7).round()
    )
    expected = d_s.sum(dim=(1, 2, 3)) / math.sqrt(18 * 7)
    assert torch.allclose(q.scale.grad, expected, atol=1e-5)


def test_sign_is_decided_on_first_batch():
    q = MinMaxQuantizer(4, signed=None)
    q.train()
    q(torch.rand(10))
    assert not q.signed
    q2 = MinMaxQuantizer(4, signed=None)
    q2.train()
    q2(torch.randn(10))
    assert q2.signed


def test_uncalibrated_quantizer_in_eval_is_a_clear_error():
    q = MinMaxQuantizer(4)
    q.eval()
    with pytest.raises(RuntimeError, match='calibrate'):
        q(torch.randn(3))


@pytest.mark.parametrize('bits', [1, 17, 4.0])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match='bits'):
        MinMaxQuantizer(bits)


def test_unknown_quantizer_kind():
    with pytest.raises(ValueError, match='minmax'):
        build_quantizer('pact', 4, signed=True, is_weight=True)

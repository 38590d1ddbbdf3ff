"""ESAM (Du et al. 2022a) checked against hand computations."""

import copy

import pytest
import torch
import torch.nn.functional as F

from ausam_tasks.methods.esam import ESAM, swp_masks

from ..core.toy import ToyDataset, batch
from .wrappers_b import (
    LR,
    assert_precisions_run,
    assert_resume_is_bit_identical,
    toy,
    train,
    wrapper,
)

ESAM_W = 'ESAMOptimWrapper'


def per_sample(model, params, x, y):
    logits = torch.func.functional_call(model, params, (x,))
    return F.cross_entropy(logits, y, reduction='none')


def hand_esam_update(model, data, rho, beta, gamma, seed=0, step=0):
    """One ESAM step with SGD by hand: SWP eps (Sec. 3.1), B+ = top
    round(gamma K) loss rises, gradient of B+'s mean loss at w + eps."""
    model = copy.deepcopy(model).train()
    x = torch.stack(data['inputs']).float()
    y = torch.stack([s.label for s in data['data_samples']])
    names = [n for n, _ in model.named_parameters()]
    w = {
        n: p.detach().clone().requires_grad_()
        for n, p in model.named_parameters()
    }
    l1 = per_sample(model, w, x, y)
    g = torch.autograd.grad(l1.mean(), list(w.values()))
    norm = torch.sqrt(sum((gi**2).sum() for gi in g))
    masks = swp_masks([w[n] for n in names], beta, seed, step)
    w2 = {
        n: (w[n].detach() + rho / beta * m * gi / norm).requires_grad_()
        for n, m, gi in zip(names, masks, g)
    }
    with torch.no_grad():
        rise = per_sample(model, w2, x, y) - l1.detach()
    n_keep = round(gamma * len(y))
    keep = torch.topk(rise, n_keep).indices
    g2 = torch.autograd.grad(
        per_sample(model, w2, x[keep], y[keep]).mean(), list(w2.values())
    )
    expected = {n: w[n].detach() - LR * gi for n, gi in zip(names, g2)}
    return expected, sorted(keep.tolist()), masks


def assert_params(model, expected, atol=1e-6):
    for n, p in model.named_parameters():
        assert torch.allclose(p, expected[n], atol=atol, rtol=1e-5), n


def test_esam_step_equals_hand_computation():
    data = batch(ToyDataset(16), range(16))
    model = toy()
    expected, keep, masks = hand_esam_update(
        model, data, rho=0.5, beta=0.5, gamma=0.25
    )
    # The mask really drops about half of the weights.
    kept = sum(m.sum() for m in masks) / sum(m.numel() for m in masks)
    assert 0.3 < kept < 0.7
    ow = wrapper(model, ESAM_W, rho=0.5, beta=0.5, gamma=0.25)
    log = model.train_step(data, ow)
    assert_params(model, expected)
    assert float(log['sam_frac']) == 0.25 and len(keep) == 4


def test_second_backward_runs_on_the_selected_samples_only():
    data = batch(ToyDataset(16), range(16))
    model = toy()
    _, keep, _ = hand_esam_update(model, data, 0.5, 0.5, 0.25)
    sizes, grads = [], []
    original = model.forward

    def spy(inputs, data_samples=None, mode='tensor'):
        sizes.append(len(inputs))
        grads.append(torch.is_grad_enabled())
        return original(inputs, data_samples, mode)

    model.forward = spy
    ow = wrapper(model, ESAM_W, rho=0.5, beta=0.5, gamma=0.25)
    seen = []
    original_step = ow.core.step

    def step(closure, *args, **kw):
        def watch(pos):
            seen.append(None if pos is None else pos.tolist())
            return closure(pos)

        return original_step(watch, *args, **kw)

    ow.core.step = step
    model.train_step(data, ow)
    # Pass 1 at w on all, the no-grad forward at w + eps on all, then
    # forward/backward at w + eps on B+ only.
    assert sizes == [16, 16, 4] and grads == [True, False, True]
    assert seen == [None, None, keep]


def test_beta_and_gamma_one_is_sam_exactly():
    a, b = toy(), toy()
    opt = dict(type='SGD', lr=LR, momentum=0.9)
    ow_a = wrapper(a, 'SAMOptimWrapper', rho=0.1, optimizer=dict(opt))
    ow_b = wrapper(b, ESAM_W, rho=0.1, beta=1.0, gamma=1.0, optimizer=opt)
    train(a, ow_a, 3)
    train(b, ow_b, 3)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n


def test_swp_masks_are_a_function_of_seed_and_step():
    params = [torch.zeros(1000), torch.zeros(10, 100)]
    m0 = swp_masks(params, 0.6, seed=3, step=5)
    again = swp_masks(params, 0.6, seed=3, step=5)
    other = swp_masks(params, 0.6, seed=3, step=6)
    assert all(torch.equal(a, b) for a, b in zip(m0, again))
    assert not torch.equal(m0[0], other[0])
    frac = torch.cat([m.flatten() for m in m0]).mean()
    assert abs(float(frac) - 0.6) < 0.05
    assert all(m.dtype == torch.float32 for m in m0)
    ones = swp_masks(params, 1.0, seed=3, step=5)
    assert all(bool((m == 1).all()) for m in ones)


def test_clip_grad_clips_the_update_gradient():
    data = batch(ToyDataset(16), range(16))
    model = toy()
    expected, _, _ = hand_esam_update(model, data, 0.5, 0.6, 0.5)
    # The unclipped update is w - lr g2: clipping to max_norm scales g2.
    w = dict(model.named_parameters())
    g2 = {n: (w[n].detach() - expected[n]) / LR for n in expected}
    total = torch.sqrt(sum((g**2).sum() for g in g2.values()))
    clip = float(total) / 4
    ow = wrapper(model, ESAM_W, rho=0.5, clip_grad=dict(max_norm=clip))
    want = {
        n: w[n].detach() - LR * g * clip / (float(total) + 1e-6)
        for n, g in g2.items()
    }
    model.train_step(data, ow)
    assert_params(model, want)


def test_fp16_and_bf16():
    assert_precisions_run(ESAM_W, rho=0.1)


def test_fp16_overflow_skips_the_step():
    model = toy()
    before = copy.deepcopy(model.state_dict())
    ow = wrapper(
        model, ESAM_W, dtype='float16', loss_scale=dict(init_scale=2.0**120)
    )
    log = train(model, ow, 1)[0]
    assert log['skipped'] == 1.0
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
    assert ow.loss_scaler.get_scale() == 2.0**119


def test_resume_is_bit_identical():
    full, resumed = assert_resume_is_bit_identical(
        ESAM_W, rho=0.1, beta=0.5, gamma=0.5, seed=7
    )
    assert resumed.core.num_steps == 6 and resumed.core.seed == 7


@pytest.mark.parametrize(
    'kw, match',
    [
        (dict(beta=0.0), 'beta must be in'),
        (dict(beta=1.5), 'beta must be in'),
        (dict(gamma=0.0), 'gamma must be in'),
        (dict(gamma=-0.5), 'gamma must be in'),
        (dict(rho=-1.0), 'rho must be >= 0'),
    ],
)
def test_bad_settings_fail_at_build(kw, match):
    with pytest.raises(ValueError, match=match):
        wrapper(toy(), ESAM_W, **kw)


def test_plain_pytorch_core():
    """The core drives a loop without mmengine."""
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    opt = ESAM(torch.optim.SGD(net.parameters(), lr=0.1), beta=0.5)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))

    def closure(pos):
        xb, yb = (x, y) if pos is None else (x[pos], y[pos])
        return {'loss': F.cross_entropy(net(xb), yb, reduction='none')}

    before = net.weight.detach().clone()
    result = opt.step(closure, model=net)
    assert len(result.positions) == 4 and opt.num_steps == 1
    assert not torch.equal(before, net.weight)


def test_only_the_first_pass_updates_batchnorm_statistics():
    data = batch(ToyDataset(16), range(16))
    model = toy()
    reference = copy.deepcopy(model).train()
    with torch.no_grad():  # exactly one forward at w
        reference(torch.stack(data['inputs']).float())
    model.train_step(data, wrapper(model, ESAM_W, rho=0.5))
    assert torch.allclose(model.bn.running_mean, reference.bn.running_mean)
    assert torch.allclose(model.bn.running_var, reference.bn.running_var)
    assert model.bn.num_batches_tracked == 1

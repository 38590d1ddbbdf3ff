"""Momentum-SAM (Becker et al. 2024) checked against hand computations."""

import copy

import pytest
import torch
import torch.nn.functional as F

from ausam_tasks.methods.msam import MSAM

from ..core.toy import ToyDataset, batch
from .wrappers_b import (
    LR,
    assert_precisions_run,
    assert_resume_is_bit_identical,
    toy,
    train,
    wrapper,
)

MSAM_W = 'MSAMOptimWrapper'
MU = 0.9


def hand_loss(model, params, data):
    x = torch.stack(data['inputs']).float()
    y = torch.stack([s.label for s in data['data_samples']])
    logits = torch.func.functional_call(model, params, (x,))
    return F.cross_entropy(logits, y)


def hand_msam(model, batches, rho):
    """Algorithm 1 with SGD (momentum MU, no weight decay) by hand: the
    unperturbed w after each step."""
    model = copy.deepcopy(model).train()
    names = [n for n, _ in model.named_parameters()]
    w = {n: p.detach().clone() for n, p in model.named_parameters()}
    v = None
    after = []
    for data in batches:
        if v is None:
            eps = {n: torch.zeros_like(w[n]) for n in names}
        else:
            norm = torch.sqrt(sum((v[n] ** 2).sum() for n in names))
            eps = {n: -rho * v[n] / norm for n in names}
        wt = {n: (w[n] + eps[n]).requires_grad_() for n in names}
        g = torch.autograd.grad(
            hand_loss(model, wt, data), [wt[n] for n in names]
        )
        g = dict(zip(names, g))
        v = (
            {n: g[n].clone() for n in names}
            if v is None
            else {n: MU * v[n] + g[n] for n in names}
        )
        w = {n: w[n] - LR * v[n] for n in names}
        after.append(w)
    return after


def test_msam_steps_equal_hand_computation():
    ds = ToyDataset(48)
    batches = [batch(ds, range(16 * i, 16 * i + 16)) for i in range(3)]
    model = toy()
    expected = hand_msam(model, batches, rho=0.3)
    ow = wrapper(
        model, MSAM_W, rho=0.3, optimizer=dict(type='SGD', lr=LR, momentum=MU)
    )
    for data, want in zip(batches, expected):
        log = model.train_step(data, ow)
        # Between steps the model holds the unperturbed w.
        for n, p in model.named_parameters():
            assert torch.allclose(p, want[n], atol=1e-6, rtol=1e-5), n
    assert 'sam_frac' not in log and torch.isfinite(log['loss'])


def test_one_forward_per_step_and_the_weights_come_back_exactly():
    model = toy()
    ow = wrapper(model, MSAM_W, optimizer=dict(type='SGD', lr=LR, momentum=MU))
    train(model, ow, 2)
    calls = []
    original = model.forward

    def spy(*args, **kw):
        calls.append(kw.get('mode'))
        return original(*args, **kw)

    model.forward = spy
    w = copy.deepcopy(dict(model.named_parameters()))
    core = ow.core
    with core.perturbed():
        moved = sum(
            float((p - w[n]).detach().pow(2).sum())
            for n, p in model.named_parameters()
        )
    assert moved == pytest.approx(3.0**2, rel=1e-4)  # ||eps|| = rho
    for n, p in model.named_parameters():
        assert torch.equal(p, w[n]), n
    train(model, ow, 1, start=2)
    assert calls == ['loss']


def test_adamw_perturbs_along_the_first_moment():
    ds = ToyDataset(32)
    b0, b1 = batch(ds, range(16)), batch(ds, range(16, 32))
    opt = dict(type='AdamW', lr=1e-2, weight_decay=0.0)
    # No BN: a conv bias before BN has a ~0 gradient that Adam would
    # normalise into rounding noise.
    model = toy(bn=False)
    ow = wrapper(model, MSAM_W, rho=0.5, optimizer=opt)
    # By hand: the same AdamW on a copy, gradient at w - rho m/||m||.
    ref = copy.deepcopy(model)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.0)
    names = [n for n, _ in ref.named_parameters()]
    for i, data in enumerate((b0, b1)):
        w = {n: p.detach().clone() for n, p in ref.named_parameters()}
        if i == 0:
            wt = {n: w[n].clone().requires_grad_() for n in names}
        else:
            m = {
                n: ref_opt.state[p]['exp_avg']
                for n, p in zip(names, ref.parameters())
            }
            norm = torch.sqrt(sum((m[n] ** 2).sum() for n in names))
            wt = {
                n: (w[n] - 0.5 * m[n] / norm).requires_grad_() for n in names
            }
        g = torch.autograd.grad(
            hand_loss(ref, wt, data), [wt[n] for n in names]
        )
        for p, gi in zip(ref.parameters(), g):
            p.grad = gi
        ref_opt.step()
        model.train_step(data, ow)
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n


def test_clip_grad_clips_the_gradient_at_the_perturbed_point():
    data = batch(ToyDataset(16), range(16))
    model = toy()
    names = [n for n, _ in model.named_parameters()]
    w = {
        n: p.detach().clone().requires_grad_()
        for n, p in model.named_parameters()
    }
    g = torch.autograd.grad(
        hand_loss(copy.deepcopy(model), w, data), list(w.values())
    )
    total = float(torch.sqrt(sum((gi**2).sum() for gi in g)))
    clip = total / 3
    ow = wrapper(
        model,
        MSAM_W,
        optimizer=dict(type='SGD', lr=LR, momentum=MU),
        clip_grad=dict(max_norm=clip),
    )
    model.train_step(data, ow)  # step 0: v = 0, so the gradient is at w
    for n, gi, (_, p) in zip(names, g, model.named_parameters()):
        want = w[n].detach() - LR * gi * clip / (total + 1e-6)
        assert torch.allclose(p, want, atol=1e-6), n


def test_fp16_and_bf16():
    assert_precisions_run(
        MSAM_W, rho=0.3, optimizer=dict(type='SGD', lr=LR, momentum=MU)
    )


def test_resume_is_bit_identical_with_the_momentum():
    full, resumed = assert_resume_is_bit_identical(MSAM_W, rho=0.5)
    assert resumed.core.num_steps == 6


@pytest.mark.parametrize(
    'opt, kw, match',
    [
        (dict(type='SGD', lr=0.1), {}, 'needs momentum'),
        (dict(type='Adam', lr=0.1, betas=(0.0, 0.9)), {}, 'needs momentum'),
        (dict(type='RMSprop', lr=0.1), {}, 'has none it knows'),
        (dict(type='SGD', lr=0.1, momentum=0.9), dict(rho=-1), 'rho'),
        (dict(type='SGD', lr=0.1, momentum=0.9), dict(adaptive=True), 'no'),
    ],
)
def test_bad_settings_fail_at_build(opt, kw, match):
    with pytest.raises(ValueError, match=match):
        wrapper(toy(), MSAM_W, optimizer=opt, **kw)


def test_a_failing_forward_leaves_the_unperturbed_weights():
    model = toy()
    ow = wrapper(model, MSAM_W, optimizer=dict(type='SGD', lr=LR, momentum=MU))
    train(model, ow, 2)
    w = copy.deepcopy(dict(model.named_parameters()))
    ds = ToyDataset(16)
    ds.x[3] = float('nan')
    with pytest.raises(FloatingPointError):
        model.train_step(batch(ds, range(16)), ow)
    for n, p in model.named_parameters():
        assert torch.equal(p, w[n]), n


def test_plain_pytorch_core():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    opt = MSAM(torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9))
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))

    def closure(pos):
        return {'loss': F.cross_entropy(net(x), y, reduction='none')}

    for _ in range(2):
        opt.step(closure, model=net)
    assert opt.num_steps == 2

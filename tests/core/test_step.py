"""The SAM / AUSAM step inside mmengine, checked against hand computations."""

import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.optim.scheduler import CosineAnnealingLR

from ausam_tasks.perturb import perturbation

from .toy import ToyDataset, ToyNet, batch

LR = 0.1


def wrapper(model, type='SAMOptimWrapper', optimizer=None, **kw):
    cfg = dict(type=type, optimizer=optimizer or dict(type='SGD', lr=LR), **kw)
    return build_optim_wrapper(model, cfg)


def toy(seed=0, **kw):
    torch.manual_seed(seed)
    return ToyNet(**kw)


def hand_loss(model, data, params):
    """Mean CE of the batch with the model's parameters replaced."""
    x = torch.stack(data['inputs']).float()
    y = torch.stack([s.label for s in data['data_samples']])
    logits = torch.func.functional_call(model, params, (x,))
    return F.cross_entropy(logits, y)


def hand_sam_update(model, data, rho, adaptive=False, eta=0.01, clip=None):
    """w - lr * grad L(w + eps), eps from Eq. 2 (or ASAM), all by hand."""
    names = [n for n, _ in model.named_parameters()]
    w = {
        n: p.detach().clone().requires_grad_()
        for n, p in model.named_parameters()
    }
    g = torch.autograd.grad(hand_loss(model, data, w), list(w.values()))
    if adaptive:
        t = [w[n].detach().abs() + eta for n in names]
        norm = torch.sqrt(sum(((ti * gi) ** 2).sum() for ti, gi in zip(t, g)))
        eps = [rho * ti * ti * gi / norm for ti, gi in zip(t, g)]
    else:
        norm = torch.sqrt(sum((gi**2).sum() for gi in g))
        eps = [rho * gi / norm for gi in g]
    w2 = {n: (w[n].detach() + e).requires_grad_() for n, e in zip(names, eps)}
    g2 = torch.autograd.grad(hand_loss(model, data, w2), list(w2.values()))
    if clip is not None:
        total = torch.sqrt(sum((gi**2).sum() for gi in g2))
        g2 = [gi * min(1.0, clip / (total.item() + 1e-6)) for gi in g2]
    return {n: w[n].detach() - LR * gi for n, gi in zip(names, g2)}


def assert_params(model, expected, atol=1e-6):
    for n, p in model.named_parameters():
        assert torch.allclose(p, expected[n], atol=atol, rtol=1e-5), n


@pytest.mark.parametrize('adaptive', [False, True])
def test_sam_step_equals_hand_computation(adaptive):
    ds = ToyDataset(16)
    data = batch(ds, range(16))
    model = toy()
    expected = hand_sam_update(model, data, rho=0.5, adaptive=adaptive)
    ow = wrapper(model, rho=0.5, adaptive=adaptive)
    model.train_step(data, ow)
    assert_params(model, expected)


def test_clip_grad_applies_to_the_update_gradient():
    ds = ToyDataset(16)
    data = batch(ds, range(16))
    model = toy()
    expected = hand_sam_update(model, data, rho=0.5, clip=0.01)
    ow = wrapper(model, rho=0.5, clip_grad=dict(max_norm=0.01))
    model.train_step(data, ow)
    assert_params(model, expected)


def test_second_pass_does_not_update_batchnorm_statistics():
    ds = ToyDataset(16)
    data = batch(ds, range(16))
    model = toy()
    reference = copy.deepcopy(model)
    reference.train()
    with torch.no_grad():  # exactly one forward at w
        reference(torch.stack(data['inputs']).float())
    model.train_step(data, wrapper(model, rho=0.5))
    assert torch.allclose(model.bn.running_mean, reference.bn.running_mean)
    assert torch.allclose(model.bn.running_var, reference.bn.running_var)
    assert model.bn.num_batches_tracked == 1
    assert model.bn.momentum == reference.bn.momentum


def test_ausam_with_alpha_one_equals_sam():
    ds = ToyDataset(48)
    a, b = toy(), toy()
    ow_a = wrapper(
        a,
        'SAMOptimWrapper',
        rho=0.1,
        optimizer=dict(type='SGD', lr=LR, momentum=0.9),
    )
    ow_b = wrapper(
        b,
        'AUSAMOptimWrapper',
        rho=0.1,
        alpha=1.0,
        init_epochs=0,
        optimizer=dict(type='SGD', lr=LR, momentum=0.9),
    )
    for step in range(3):
        data = batch(ds, range(16 * step, 16 * step + 16))
        la = a.train_step(data, ow_a)
        lb = b.train_step(data, ow_b)
        assert torch.allclose(la['loss'], lb['loss'])
    assert_params(b, dict(a.named_parameters()), atol=0)


def test_ausam_with_a_fixed_selection_equals_sam_on_that_subset():
    ds = ToyDataset(16)
    pos = torch.tensor([1, 4, 5, 9, 12])
    a, b = toy(), toy()
    ow = wrapper(a, 'AUSAMOptimWrapper', rho=0.2, alpha=5 / 16, init_epochs=0)
    ow.core.select = lambda *args, **kw: pos
    a.train_step(batch(ds, range(16)), ow)
    b.train_step(batch(ds, pos.tolist()), wrapper(b, rho=0.2))
    assert_params(a, dict(b.named_parameters()), atol=1e-7)
    # Only the selected samples were scored, with |l(w + eps) - l(w)|.
    assert ow.selection_counts()[:16].nonzero().flatten().tolist() == (
        pos.tolist()
    )


def test_scores_are_the_loss_change_of_each_selected_sample():
    ds = ToyDataset(8)
    data = batch(ds, range(8))
    model = toy()
    ref = copy.deepcopy(model)
    ow = wrapper(model, 'AUSAMOptimWrapper', rho=0.5, alpha=1.0, init_epochs=0)
    model.train_step(data, ow)
    # By hand: per-sample losses at w and at w + eps (eps from the mean loss).
    x = torch.stack(data['inputs']).float()
    y = torch.stack([s.label for s in data['data_samples']])
    l1 = F.cross_entropy(ref(x), y, reduction='none')
    params = [p for p in ref.parameters()]
    l1.mean().backward()
    eps = perturbation(params, 0.5)
    with torch.no_grad():
        for p, e in zip(params, eps):
            p.add_(e)
        l2 = F.cross_entropy(ref(x), y, reduction='none')
    got = ow.sample_scores(torch.arange(8)).float()
    assert torch.allclose(got, (l2 - l1).abs().detach(), atol=1e-6)


def test_init_epochs_train_on_the_whole_batch_then_alpha():
    ds = ToyDataset(16)
    model = toy()
    ow = wrapper(model, 'AUSAMOptimWrapper', alpha=0.5, init_epochs=1)
    idx = torch.arange(16)
    assert len(ow.core.select(idx, epoch=0)) == 16
    assert len(ow.core.select(idx, epoch=1)) == 8
    # The wrapper reads the epoch from mmengine's runtime info.
    hub = MessageHub.get_instance('test_init_epochs')
    hub.update_info('epoch', 0)
    assert model.train_step(batch(ds, range(16)), ow)['sam_frac'] == 1.0
    hub.update_info('epoch', 1)
    assert model.train_step(batch(ds, range(16)), ow)['sam_frac'] == 0.5


def test_zero_gradient_perturbs_by_zero():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.zeros(3)
    for adaptive in (False, True):
        eps = perturbation([p], rho=0.05, adaptive=adaptive)
        assert torch.equal(eps[0], torch.zeros(3))


def test_parameter_schedulers_drive_the_base_optimizer():
    model = toy()
    ow = wrapper(model, 'AUSAMOptimWrapper', alpha=0.5)
    sched = CosineAnnealingLR(ow, T_max=4, by_epoch=False)
    ds = ToyDataset(16)
    lrs = []
    for _ in range(2):
        model.train_step(batch(ds, range(16)), ow)
        sched.step()
        lrs.append(ow.optimizer.param_groups[0]['lr'])
    assert lrs[0] == pytest.approx(LR * (1 + 0.7071067811865476) / 2)
    assert lrs[1] == pytest.approx(LR * 0.5)
    assert ow.get_lr()['lr'][0] == lrs[1]


def test_adam_base_optimizer_steps():
    model = toy()
    before = copy.deepcopy(model.state_dict())
    ow = wrapper(
        model,
        'AUSAMOptimWrapper',
        alpha=0.5,
        init_epochs=0,
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01),
    )
    model.train_step(batch(ToyDataset(16), range(16)), ow)
    assert not torch.equal(model.conv.weight, before['conv.weight'])
    assert len(ow.optimizer.state) > 0


def test_sgd_config_trains_the_same_model_unchanged():
    """The per-sample losses are averaged by plain mmengine training."""
    model = toy()
    ow = build_optim_wrapper(
        model, dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=LR))
    )
    log = model.train_step(batch(ToyDataset(16), range(16)), ow)
    assert log['loss'].dim() == 0


def test_state_dict_round_trip_restores_scores_and_step():
    model = toy()
    ow = wrapper(model, 'AUSAMOptimWrapper', alpha=0.5, init_epochs=0)
    model.train_step(batch(ToyDataset(16), range(16)), ow)
    state = ow.state_dict()
    other = wrapper(toy(), 'AUSAMOptimWrapper', alpha=0.5, init_epochs=0)
    other.load_state_dict(state)
    assert other.core.num_steps == 1
    idx = torch.arange(16)
    torch.testing.assert_close(
        other.sample_scores(idx),
        ow.sample_scores(idx),
        rtol=0,
        atol=0,
        equal_nan=True,
    )
    assert torch.equal(other.selection_counts(), ow.selection_counts())


def test_parameters_marked_sam_perturb_false_are_not_perturbed():
    ds = ToyDataset(16)
    data = batch(ds, range(16))
    model = toy(bn=False)
    model.fc.bias.sam_perturb = False
    # By hand: eps over every parameter but fc.bias.
    names = [n for n, _ in model.named_parameters()]
    w = {
        n: p.detach().clone().requires_grad_()
        for n, p in model.named_parameters()
    }
    g = dict(
        zip(
            names,
            torch.autograd.grad(hand_loss(model, data, w), list(w.values())),
        )
    )
    norm = torch.sqrt(sum((g[n] ** 2).sum() for n in names if n != 'fc.bias'))
    w2 = {
        n: (
            w[n].detach() + (0 if n == 'fc.bias' else 0.5 * g[n] / norm)
        ).requires_grad_()
        for n in names
    }
    g2 = torch.autograd.grad(hand_loss(model, data, w2), list(w2.values()))
    expected = {n: w[n].detach() - LR * gi for n, gi in zip(names, g2)}
    model.train_step(data, wrapper(model, rho=0.5))
    assert_params(model, expected)


def test_modules_can_join_the_second_pass_context():
    """A module's sam_second_pass() context is active exactly during the
    forward at w + eps (QAT observers use it to keep their ranges)."""
    import contextlib

    model = toy()
    seen = []

    class Probe(torch.nn.Module):
        active = False

        @contextlib.contextmanager
        def sam_second_pass(self):
            Probe.active = True
            yield
            Probe.active = False

        def forward(self, x):
            seen.append(Probe.active)
            return x

    model.conv = torch.nn.Sequential(model.conv, Probe())
    model.train_step(batch(ToyDataset(8), range(8)), wrapper(model))
    assert seen == [False, True]
    assert not Probe.active

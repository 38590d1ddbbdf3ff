"""MESA (Du et al. 2022b) checked against hand computations."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ausam_tasks.methods.mesa import MESA, trajectory_kl

from ..core.toy import ToyDataset, batch
from .wrappers_b import (
    assert_precisions_run,
    assert_resume_is_bit_identical,
    toy,
    toy_outputs,
    train,
    wrapper,
)

LR = 0.1


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)
    )


def data(step, n=8):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(n, 4, generator=g), torch.randint(
        0, 3, (n,), generator=g
    )


def closure_for(model, x, y, calls=None):
    def closure(positions=None, with_outputs=False):
        if calls is not None:
            calls.append((with_outputs, model.training))
        logits = model(x)
        losses = {'loss_cls': F.cross_entropy(logits, y, reduction='none')}
        return (losses, logits) if with_outputs else losses

    return closure


def hand_mesa(model, steps, decay, kl_weight, tau):
    """SGD + MESA by hand: teacher = EMA of the state (eval mode), loss =
    CE + kl_weight tau^2 sum p_t (log p_t - log p_s)."""
    student = copy.deepcopy(model).train()
    teacher = copy.deepcopy(model).eval()
    ema = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(steps):
        x, y = data(step)
        teacher.load_state_dict(ema)
        with torch.no_grad():
            p_t = torch.softmax(teacher(x) / tau, dim=1)
        logits = student(x)
        p_s = torch.softmax(logits / tau, dim=1)
        kl = (p_t * (p_t.log() - p_s.log())).sum(1) * tau**2
        loss = F.cross_entropy(logits, y, reduction='none') + kl_weight * kl
        grads = torch.autograd.grad(loss.mean(), list(student.parameters()))
        with torch.no_grad():
            for p, g in zip(student.parameters(), grads):
                p -= LR * g
        for k, v in student.state_dict().items():
            if v.is_floating_point():
                ema[k] = decay * ema[k] + (1 - decay) * v
    return student, ema


def run_core(model, steps, start=0, opt=None, **kw):
    opt = opt or MESA(torch.optim.SGD(model.parameters(), lr=LR), **kw)
    for step in range(start, start + steps):
        x, y = data(step)
        opt.step(closure_for(model, x, y), model, epoch=float(step))
    return opt


def test_mesa_steps_equal_hand_computation():
    model = net()
    want, ema = hand_mesa(model, 3, decay=0.5, kl_weight=0.8, tau=2.0)
    opt = run_core(
        model, 3, decay=0.5, kl_weight=0.8, temperature=2.0, start_epoch=0
    )
    for (n, p), q in zip(model.named_parameters(), want.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    for n, v in opt.teacher.items():
        assert torch.allclose(v, ema[n], atol=1e-6), n
    # The teacher moved away from both w_0 and w_3.
    assert not torch.allclose(opt.teacher['3.weight'], model[3].weight)


def test_before_start_epoch_the_step_is_plain_sgd_and_the_teacher_tracks():
    model, ref = net(), net()
    calls = []
    opt = MESA(
        torch.optim.SGD(model.parameters(), lr=LR), decay=0.0, start_epoch=2
    )
    x, y = data(0)
    opt.step(closure_for(model, x, y, calls), model, epoch=1.0)
    loss = F.cross_entropy(ref(x), y)
    loss.backward()
    with torch.no_grad():
        for p in ref.parameters():
            p -= LR * p.grad
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-7)
    assert calls == [(False, True)]  # one plain forward, no teacher
    # decay 0: the teacher is the model after the step.
    for n, t in model.state_dict().items():
        if t.is_floating_point():
            assert torch.equal(opt.teacher[n], t), n
    calls.clear()
    opt.step(closure_for(model, x, y, calls), model, epoch=2.0)
    assert calls == [(True, False), (True, True)]  # teacher (eval), model


def test_trajectory_kl_matches_the_definition():
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    p, q = torch.softmax(t / 3, 1), torch.softmax(s / 3, 1)
    want = 9 * (p * (p / q).log()).sum(1)
    assert torch.allclose(trajectory_kl(s, t, 3.0), want, atol=1e-6)
    assert torch.allclose(trajectory_kl(t, t, 3.0), torch.zeros(5), atol=1e-6)
    # Extra dimensions (e.g. one distribution per keypoint) are summed.
    s3, t3 = torch.randn(5, 2, 7), torch.randn(5, 2, 7)
    both = trajectory_kl(s3[:, 0], t3[:, 0], 1) + trajectory_kl(
        s3[:, 1], t3[:, 1], 1
    )
    assert torch.allclose(trajectory_kl(s3, t3, 1), both, atol=1e-6)


def test_teacher_forward_leaves_the_model_bit_identical():
    model = net()
    opt = run_core(model, 2, decay=0.5, start_epoch=0)
    before = copy.deepcopy(model.state_dict())
    with opt.teacher_weights(model):
        assert not model.training
        assert torch.equal(model[0].weight, opt.teacher['0.weight'])
    assert model.training
    for n, t in model.state_dict().items():
        assert torch.equal(t, before[n]), n


def test_resume_is_bit_identical_with_the_teacher():
    kw = dict(decay=0.7, start_epoch=1)
    full = net()
    run_core(full, 4, **kw)
    half = net()
    opt = run_core(half, 2, **kw)
    buf = io.BytesIO()
    torch.save({'model': half.state_dict(), 'opt': opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    resumed = net(seed=1)
    resumed.load_state_dict(saved['model'])
    opt2 = MESA(torch.optim.SGD(resumed.parameters(), lr=LR), **kw)
    opt2.load_state_dict(saved['opt'])
    run_core(resumed, 2, start=2, opt=opt2)
    for (n, a), b in zip(
        full.state_dict().items(), resumed.state_dict().values()
    ):
        assert torch.equal(a, b), n
    assert opt2.num_steps == 4


def test_teacher_of_another_model_is_refused():
    opt = run_core(net(), 1, start_epoch=0)
    other = nn.Sequential(nn.Linear(4, 3))
    opt2 = MESA(torch.optim.SGD(other.parameters(), lr=LR))
    opt2.load_state_dict(opt.state_dict())
    x, y = data(0)
    with pytest.raises(KeyError, match='do not match'):
        opt2.step(closure_for(other, x, y), other, epoch=9.0)


@pytest.mark.parametrize(
    'kw, match',
    [
        (dict(decay=1.0), 'decay must be in'),
        (dict(decay=-0.1), 'decay must be in'),
        (dict(kl_weight=-1), 'kl_weight'),
        (dict(temperature=0), 'temperature'),
        (dict(start_epoch=-1), 'start_epoch'),
    ],
)
def test_bad_settings_fail_at_build(kw, match):
    with pytest.raises(ValueError, match=match):
        MESA(torch.optim.SGD(net().parameters(), lr=LR), **kw)


# --- the mmengine wrapper ---------------------------------------------------
MESA_W = 'MESAOptimWrapper'


def hand_mesa_toy(model, batches, decay, kl_weight, tau, clip=None):
    """MESA with SGD on the toy model by hand (teacher: EMA state dict,
    eval mode)."""
    student = copy.deepcopy(model).train()
    teacher = copy.deepcopy(model).eval()
    ema = {k: v.clone() for k, v in model.state_dict().items()}
    for data in batches:
        x = torch.stack(data['inputs']).float()
        y = torch.stack([s.label for s in data['data_samples']])
        teacher.load_state_dict(ema)
        with torch.no_grad():
            p_t = torch.softmax(teacher.logits(x) / tau, dim=1)
        logits = student.logits(x)
        p_s = torch.softmax(logits / tau, dim=1)
        kl = (p_t * (p_t.log() - p_s.log())).sum(1) * tau**2
        loss = F.cross_entropy(logits, y, reduction='none') + kl_weight * kl
        grads = torch.autograd.grad(loss.mean(), list(student.parameters()))
        if clip is not None:
            total = float(torch.sqrt(sum((g**2).sum() for g in grads)))
            grads = [g * min(1.0, clip / (total + 1e-6)) for g in grads]
        with torch.no_grad():
            for p, g in zip(student.parameters(), grads):
                p -= LR * g
        for k, v in student.state_dict().items():
            if v.is_floating_point():
                ema[k] = decay * ema[k] + (1 - decay) * v
    return student, ema


def toy_batches(n):
    ds = ToyDataset(64)
    return [batch(ds, range(16 * i, 16 * i + 16)) for i in range(n)]


@pytest.mark.parametrize('clip', [None, 0.05])
def test_wrapper_steps_equal_hand_computation(clip):
    batches = toy_batches(2)
    model = toy_outputs()
    want, ema = hand_mesa_toy(model, batches, 0.5, 0.8, 2.0, clip)
    ow = wrapper(
        model,
        MESA_W,
        decay=0.5,
        kl_weight=0.8,
        temperature=2.0,
        start_epoch=0,
        clip_grad=None if clip is None else dict(max_norm=clip),
    )
    for data in batches:
        log = model.train_step(data, ow)
    for (n, p), q in zip(model.named_parameters(), want.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    for n, v in ow.core.teacher.items():
        assert torch.allclose(v, ema[n], atol=1e-6), n
    assert {'loss', 'loss_cls', 'loss_kl', 'acc'} <= set(log)
    assert 'sam_frac' not in log
    assert float(log['loss']) == pytest.approx(
        float(log['loss_cls'] + log['loss_kl']), rel=1e-5
    )


def test_logged_accuracy_is_the_models_not_the_teachers():
    model = toy_outputs()
    ow = wrapper(model, MESA_W, decay=0.0, start_epoch=0)
    train(model, ow, 2)  # teacher = the model after each step
    data = toy_batches(1)[0]
    x = torch.stack(data['inputs']).float()
    y = torch.stack([s.label for s in data['data_samples']])
    # The teacher (eval mode, running statistics) is forced to disagree.
    ow.core.teacher['fc.bias'] += 100 * F.one_hot((y[0] + 1) % 3, 3).float()
    with torch.no_grad():
        acc = (model.logits(x).argmax(1) == y).float().mean()
    log = model.train_step(data, ow)
    assert float(log['acc']) == pytest.approx(float(acc))


def test_fp16_and_bf16():
    assert_precisions_run(
        MESA_W, make_model=toy_outputs, decay=0.5, start_epoch=0
    )


def test_resume_is_bit_identical_with_the_teacher_wrapper():
    _, resumed = assert_resume_is_bit_identical(
        MESA_W, make_model=toy_outputs, decay=0.5, start_epoch=0
    )
    assert resumed.core.num_steps == 6


def test_model_without_the_outputs_mode_is_told_what_to_add():
    model = toy()
    ow = wrapper(model, MESA_W, start_epoch=0)
    with pytest.raises(NotImplementedError, match='loss_and_outputs'):
        train(model, ow, 1)


@pytest.mark.parametrize(
    'kw, match',
    [
        (dict(rho=0.05), "no 'rho'"),
        (dict(decay=1.0), 'decay must be in'),
        (dict(kl_weight=-0.1), 'kl_weight'),
    ],
)
def test_wrapper_bad_settings_fail_at_build(kw, match):
    with pytest.raises(ValueError, match=match):
        wrapper(toy_outputs(), MESA_W, **kw)

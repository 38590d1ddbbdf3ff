"""SAF (Du et al. 2022b) checked against hand computations."""

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from ausam_tasks.methods.saf import SAF

from .test_mesa import closure_for, net
from .wrappers_b import (
    assert_precisions_run,
    toy_outputs,
    train,
    wrapper,
)

LR = 0.1
X = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
Y = torch.randint(0, 3, (8,), generator=torch.Generator().manual_seed(1))
# Epoch 0 sees samples 0-3 only: 4-7 have no record to compare with in
# epoch 1 (lag 1), so they get no KL term there.
SCHEDULE = [
    (0, [0, 1, 2, 3]),
    (1, [5, 0, 7, 2]),
    (1, [1, 3, 4, 6]),
    (2, [7, 6, 5, 4]),
    (2, [3, 2, 1, 0]),
]


def hand_saf(model, lag, kl_weight, tau, start_epoch):
    model = copy.deepcopy(model).train()
    record = {}  # (epoch, sample) -> logits
    for epoch, idx in SCHEDULE:
        x, y = X[idx], Y[idx]
        logits = model(x)
        loss = F.cross_entropy(logits, y, reduction='none')
        if epoch >= start_epoch:
            for j, i in enumerate(idx):
                past = record.get((epoch - lag, i))
                if past is not None:
                    p = torch.softmax(past / tau, 0)
                    q = torch.softmax(logits[j] / tau, 0)
                    kl = (p * (p.log() - q.log())).sum() * tau**2
                    loss = loss + F.one_hot(torch.tensor(j), 4) * (
                        kl_weight * kl
                    )
        grads = torch.autograd.grad(loss.mean(), list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= LR * g
        for j, i in enumerate(idx):
            record[(epoch, i)] = logits[j].detach()
    return model, record


def run_core(model, steps=SCHEDULE, opt=None, **kw):
    opt = opt or SAF(torch.optim.SGD(model.parameters(), lr=LR), **kw)
    for epoch, idx in steps:
        opt.step(
            closure_for(model, X[idx], Y[idx]), idx, epoch=epoch, model=model
        )
    return opt


def test_saf_steps_equal_hand_computation():
    model = net()
    kw = dict(lag=1, kl_weight=0.5, start_epoch=1)
    want, record = hand_saf(model, tau=2.0, **kw)
    opt = run_core(model, temperature=2.0, **kw)
    for (n, p), q in zip(model.named_parameters(), want.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    # The table holds epoch 2's outputs in slot 0 and epoch 1's in slot 1.
    for (epoch, i), logits in record.items():
        slot = epoch % 2
        if epoch >= 1:
            assert opt.recorded[slot, i] == epoch
            assert torch.allclose(opt.outputs[slot, i], logits, atol=1e-6)


def test_without_past_records_the_step_is_plain_sgd():
    a, b = net(), net()
    run_core(a, lag=3, start_epoch=0)  # epochs 0-2 < lag: nothing to use
    opt_b = torch.optim.SGD(b.parameters(), lr=LR)
    for epoch, idx in SCHEDULE:
        opt_b.zero_grad()
        F.cross_entropy(b(X[idx]), Y[idx]).backward()
        opt_b.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-7)


def test_resume_is_bit_identical_with_the_output_table():
    kw = dict(lag=1, kl_weight=0.5, start_epoch=1)
    full = net()
    run_core(full, **kw)
    half = net()
    opt = run_core(half, SCHEDULE[:2], **kw)
    buf = io.BytesIO()
    torch.save({'model': half.state_dict(), 'opt': opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    resumed = net(seed=1)
    resumed.load_state_dict(saved['model'])
    opt2 = SAF(torch.optim.SGD(resumed.parameters(), lr=LR), **kw)
    opt2.load_state_dict(saved['opt'])
    run_core(resumed, SCHEDULE[2:], opt=opt2)
    for (n, a), b in zip(
        full.state_dict().items(), resumed.state_dict().values()
    ):
        assert torch.equal(a, b), n


def test_index_outside_a_fixed_table_is_refused():
    opt = SAF(torch.optim.SGD(net().parameters(), lr=LR), num_samples=4)
    model = net()
    with pytest.raises(IndexError, match='outside the output table of 4'):
        opt.step(closure_for(model, X[:5], Y[:5]), range(5), model=model)


def test_wrapper_reads_the_epoch_and_logs_the_kl_term():
    model = toy_outputs()
    ow = wrapper(model, 'SAFOptimWrapper', lag=1, start_epoch=1)
    hub = MessageHub.get_instance('test_saf_epoch')
    try:
        hub.update_info('epoch', 0)
        log0 = train(model, ow, 1)[0]
        hub.update_info('epoch', 1)
        log = train(model, ow, 1)[0]  # the same 16 samples, one epoch on
    finally:
        # A fresh current hub without an epoch, for the tests that follow.
        MessageHub.get_instance('test_saf_epoch_done')
    assert 'loss_kl' not in log0 and 'sam_frac' not in log0
    assert float(log['loss_kl']) > 0
    assert (ow.core.recorded[:, :16] >= 0).all()


def test_fp16_and_bf16():
    assert_precisions_run('SAFOptimWrapper', make_model=toy_outputs)


@pytest.mark.parametrize(
    'kw, match',
    [
        (dict(lag=0), 'lag'),
        (dict(lag=1.5), 'lag'),
        (dict(kl_weight=-1.0), 'kl_weight'),
        (dict(temperature=0.0), 'temperature'),
        (dict(start_epoch=-2), 'start_epoch'),
        (dict(num_samples=0), 'num_samples'),
        (dict(rho=0.1), "no 'rho'"),
    ],
)
def test_bad_settings_fail_at_build(kw, match):
    with pytest.raises(ValueError, match=match):
        wrapper(toy_outputs(), 'SAFOptimWrapper', **kw)

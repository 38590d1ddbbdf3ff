"""What every method wrapper must do: reject bad settings at build time,
train under fp16 (loss scaling) and bf16, and resume bit-identically."""

import copy
import io

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from tests.core.toy import ToyDataset, ToyNet, batch

from .hand import toy

SGD = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)
# Each method with settings that exercise both of its kinds of step within
# a few steps (RST's seed 1 draws SAM and plain steps in the first four).
METHODS = {
    'LookSAM': dict(type='LookSAMOptimWrapper', k=3, alpha=0.7),
    'RST': dict(type='RSTOptimWrapper', p_start=0.5, seed=1),
    'LatePhaseSAM': dict(type='LatePhaseSAMOptimWrapper', start_epoch=1),
    'KSAM': dict(type='KSAMOptimWrapper', alpha=0.5),
}
EPOCHS = [0, 0, 0, 1, 1, 1]  # late-phase SAM switches at step 3


def build(model, name, **kw):
    cfg = dict(METHODS[name], optimizer=dict(SGD), rho=0.1)
    cfg.update(kw)
    return build_optim_wrapper(model, cfg)


def train(model, ow, steps, first=0):
    ds = ToyDataset(32, seed=6)
    hub = MessageHub.get_instance('test_methods_common')
    logs = []
    for t in range(first, first + steps):
        hub.update_info('epoch', EPOCHS[t])
        logs.append(
            model.train_step(
                batch(ds, range(16 * (t % 2), 16 * (t % 2) + 16)), ow
            )
        )
    return logs


@pytest.mark.parametrize(
    'name, kw, match',
    [
        ('LookSAM', dict(k=0), 'k must be an integer >= 1'),
        ('LookSAM', dict(k=2.5), 'k must be an integer >= 1'),
        ('LookSAM', dict(alpha=-0.1), 'alpha must be >= 0'),
        ('LookSAM', dict(rho=-1.0), 'rho must be >= 0'),
        ('RST', dict(p_start=1.5), r'p_start is a probability.*\[0, 1\]'),
        ('RST', dict(p_start=-0.1), r'p_start is a probability'),
        (
            'RST',
            dict(schedule='linear', p_end=2.0),
            r'p_end is a probability',
        ),
        ('RST', dict(schedule='cosine'), "unknown RST schedule 'cosine'"),
        ('RST', dict(p_end=0.9), "set schedule='linear'"),
        ('LatePhaseSAM', dict(start_epoch=-1), 'start_epoch must be >= 0'),
        ('KSAM', dict(alpha=0.0), r'alpha must be in \(0, 1\]'),
        ('KSAM', dict(alpha=1.5), r'alpha must be in \(0, 1\]'),
        ('KSAM', dict(accumulative_counts=0), 'accumulative_counts'),
    ],
)
def test_bad_settings_fail_when_the_wrapper_is_built(name, kw, match):
    with pytest.raises(ValueError, match=match):
        build(ToyNet(), name, **kw)


@pytest.mark.parametrize('name', sorted(METHODS))
def test_resume_through_state_dict_is_bit_identical(name):
    full = toy()
    ow_full = build(full, name)
    logs = train(full, ow_full, 6)
    kinds = {float(log['sam_frac']) > 0 for log in logs}
    assert kinds == {True, False} or name == 'KSAM'

    half = toy()
    ow_half = build(half, name)
    train(half, ow_half, 4)  # LookSAM: step 4 reuses the stored g_v
    buf = io.BytesIO()
    torch.save({'model': half.state_dict(), 'ow': ow_half.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # a safe checkpoint
    resumed = toy(seed=1)  # different weights: all must come from the file
    resumed.load_state_dict(saved['model'])
    ow_resumed = build(resumed, name)
    ow_resumed.load_state_dict(saved['ow'])
    train(resumed, ow_resumed, 2, first=4)
    for (k, a), b in zip(
        full.state_dict().items(), resumed.state_dict().values()
    ):
        assert torch.equal(a, b), k
    assert ow_resumed.core.num_steps == ow_full.core.num_steps == 6


def test_looksam_checkpoint_carries_the_stored_component():
    model = toy()
    ow = build(model, 'LookSAM')
    train(model, ow, 2)
    state = copy.deepcopy(ow.state_dict())['sharpness_aware']
    assert len(state['g_v']) == len(list(model.parameters()))
    for v, w in zip(state['g_v'], ow.core.g_v):
        assert torch.equal(v, w)


@pytest.mark.parametrize('name', sorted(METHODS))
def test_fp16_follows_fp32(name):
    runs = {}
    for dtype in (None, 'float16'):
        model = toy()
        ow = build(model, name, dtype=dtype)
        logs = train(model, ow, 6)
        runs[dtype] = (model, [float(log['sam_frac']) for log in logs])
        assert (ow.loss_scaler is not None) == (dtype == 'float16')
    (m32, f32), (m16, f16) = runs[None], runs['float16']
    assert f16 == f32  # the same kinds of step (and RST draws)
    assert not any(float(log.get('skipped', 0)) for log in logs)
    for (k, a), b in zip(m32.named_parameters(), m16.parameters()):
        assert torch.allclose(a, b, rtol=0.02, atol=2e-3), k


@pytest.mark.parametrize('name', sorted(METHODS))
def test_bf16_trains_without_a_scaler(name):
    model = toy()
    before = copy.deepcopy(model.state_dict())
    ow = build(model, name, dtype='bfloat16')
    train(model, ow, 4)
    assert ow.loss_scaler is None
    for k, v in model.named_parameters():
        assert torch.isfinite(v).all() and not torch.equal(v, before[k]), k


@pytest.mark.parametrize('name', ['LookSAM', 'RST', 'LatePhaseSAM'])
def test_fp16_overflow_in_a_one_pass_step_skips_it(name):
    model = toy()
    kw = dict(p_start=0.0) if name == 'RST' else {}  # RST: plain steps only
    ow = build(
        model, name, dtype='float16', loss_scale=dict(init_scale=8.0), **kw
    )
    train(model, ow, 2)  # LookSAM: a SAM step, then its one-pass step
    before = copy.deepcopy(dict(model.named_parameters()))
    ow.loss_scaler.update(2.0**120)  # next backward overflows
    log = train(model, ow, 1, first=2)[0]
    assert float(log['sam_frac']) == 0.0 and float(log['skipped']) == 1.0
    for k, v in model.named_parameters():
        assert torch.equal(v, before[k]), k
    assert ow.loss_scaler.get_scale() == 2.0**119

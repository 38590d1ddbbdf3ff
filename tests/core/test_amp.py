"""fp16 / bf16 autocast (on CPU here; the same code runs on CUDA)."""

import copy

import torch
from mmengine.optim import build_optim_wrapper

from .toy import ToyDataset, ToyNet, batch


def run(dtype, steps=6, **kw):
    """``steps`` AUSAM steps; also returns the dtype of every output of the
    model's conv and linear layers (the probe: what the model really ran)."""
    torch.manual_seed(0)
    model = ToyNet()
    seen = []
    for layer in (model.conv, model.fc):
        layer.register_forward_hook(
            lambda mod, args, out: seen.append(out.dtype)
        )
    ow = build_optim_wrapper(
        model,
        dict(
            type='AUSAMOptimWrapper',
            optimizer=dict(type='SGD', lr=0.05),
            alpha=0.5,
            init_epochs=0,
            warmup_epochs=0,
            rho=0.1,
            dtype=dtype,
            **kw,
        ),
    )
    ds = ToyDataset(32)
    chosen = []
    original = ow.core.select

    def spy(*args, **kwargs):
        pos = original(*args, **kwargs)
        chosen.append(pos.tolist())
        return pos

    ow.core.select = spy
    for step in range(steps):
        model.train_step(
            batch(ds, range(16 * (step % 2), 16 * (step % 2) + 16)), ow
        )
    return model, ow, chosen, seen


def test_fp16_makes_the_same_selections_and_near_identical_scores():
    _, ow32, sel32, seen32 = run(None)
    _, ow16, sel16, seen16 = run('float16')
    # Both passes of every step, conv and linear: 6 steps x 2 passes x 2.
    assert seen32 == [torch.float32] * 24
    assert seen16 == [torch.float16] * 24
    assert sel16 == sel32
    s32 = ow32.sample_scores(torch.arange(32))
    s16 = ow16.sample_scores(torch.arange(32))
    assert torch.equal(torch.isnan(s32), torch.isnan(s16))
    seen = ~torch.isnan(s32)
    assert torch.allclose(s16[seen], s32[seen], rtol=0.05, atol=2e-3)
    assert ow16.loss_scaler is not None


def test_bf16_runs_without_a_scaler():
    model, ow, _, seen = run('bfloat16', steps=2)
    assert seen == [torch.bfloat16] * 8
    assert ow.loss_scaler is None
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_fp16_overflow_skips_the_step_like_amp_optim_wrapper():
    torch.manual_seed(0)
    model = ToyNet()
    ow = build_optim_wrapper(
        model,
        dict(
            type='SAMOptimWrapper',
            optimizer=dict(type='SGD', lr=0.1),
            dtype='float16',
            loss_scale=dict(init_scale=2.0**120),
        ),
    )
    before = copy.deepcopy(dict(model.named_parameters()))
    log = model.train_step(batch(ToyDataset(8), range(8)), ow)
    assert log['skipped'] == 1.0
    for k, v in model.named_parameters():
        assert torch.equal(v, before[k]), k
    assert ow.loss_scaler.get_scale() == 2.0**119  # backed off once
    # The scaler state travels with the checkpoint.
    assert ow.state_dict()['loss_scaler']['scale'] == 2.0**119


def test_fp16_non_finite_loss_is_an_overflow_not_an_error():
    torch.manual_seed(0)
    model = ToyNet()
    ow = build_optim_wrapper(
        model,
        dict(
            type='AUSAMOptimWrapper',
            optimizer=dict(type='SGD', lr=0.1),
            alpha=1.0,
            init_epochs=0,
            dtype='float16',
        ),
    )
    ds = ToyDataset(8)
    ds.x[2] = float('inf')
    before = copy.deepcopy(dict(model.named_parameters()))
    scale = None
    log = model.train_step(batch(ds, range(8)), ow)
    scale = ow.loss_scaler.get_scale()
    assert log['skipped'] == 1.0 and scale < 2.0**16
    for k, v in model.named_parameters():
        assert torch.equal(v, before[k]), k
    assert ow.selection_counts().sum() == 0  # no NaN scores recorded

"""Bad settings fail at build time, bad batches at the first step."""

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from .toy import ToyDataset, ToyNet, batch


def build(type='AUSAMOptimWrapper', model=None, **kw):
    return build_optim_wrapper(
        model or ToyNet(),
        dict(type=type, optimizer=dict(type='SGD', lr=0.1), **kw),
    )


@pytest.mark.parametrize(
    'kw, match',
    [
        (dict(alpha=0.0), 'alpha must be in'),
        (dict(alpha=1.5), 'alpha must be in'),
        (dict(rho=-0.1), 'rho must be >= 0'),
        (dict(s_min=0.0), 's_min'),
        (dict(s_min=0.6, s_max=0.5), 's_min'),
        (dict(selector='loss'), 'unknown selector'),
        (dict(score_average='median'), 'score average'),
        (dict(warmup_by='step'), 'warmup_by'),
        (dict(dtype='int8'), 'dtype'),
        (dict(accumulative_counts=0), 'accumulative_counts'),
    ],
)
def test_bad_settings_fail_at_build(kw, match):
    with pytest.raises(ValueError, match=match):
        build(**kw)


def test_sam_rejects_negative_rho():
    with pytest.raises(ValueError, match='rho'):
        build('SAMOptimWrapper', rho=-1)


def test_scalar_loss_is_rejected_with_the_protocol():
    model = ToyNet(scalar_loss=True)
    ow = build(model=model)
    with pytest.raises(ValueError, match=r'per-sample vector.*SAMTrainStep'):
        model.train_step(batch(ToyDataset(8), range(8)), ow)


def test_batch_without_sample_idx_is_rejected():
    model = ToyNet()
    ow = build(model=model)
    data = batch(ToyDataset(8, with_idx=False), range(8))
    with pytest.raises(KeyError, match='no sample_idx'):
        model.train_step(data, ow)


def test_index_outside_the_table_is_rejected_before_any_update():
    model = ToyNet()
    ow = build(model=model, num_samples=4)
    before = model.conv.weight.detach().clone()
    with pytest.raises(IndexError, match='outside the score table of 4'):
        model.train_step(batch(ToyDataset(8), range(8)), ow)
    assert torch.equal(model.conv.weight, before)


def test_default_one_pass_train_step_is_refused():
    """A model without the mixin reaches update_params with a scalar."""
    ow = build('SAMOptimWrapper')
    with pytest.raises(RuntimeError, match='SAMTrainStepMixin'):
        ow.update_params(torch.tensor(1.0, requires_grad=True))


def test_non_finite_loss_names_the_step_and_the_loss():
    model = ToyNet()
    ow = build(model=model, init_epochs=0)
    ds = ToyDataset(8)
    model.train_step(batch(ds, range(8)), ow)
    ds.x[3] = float('nan')
    with pytest.raises(FloatingPointError, match=r"step 1: loss 'loss_cls'"):
        model.train_step(batch(ds, range(8)), ow)


def test_checkpoint_loader_refuses_other_getattr_calls(tmp_path):
    import pickle

    from mmengine.logging import HistoryBuffer

    from ausam_tasks.engine import load_checkpoint_file
    from ausam_tasks.engine.checkpoint import history_buffer_method

    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_method(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_method(torch, 'load')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))


def test_non_tensor_loss_is_rejected_with_the_protocol():
    from ausam_tasks.engine import per_sample_losses

    with pytest.raises(TypeError, match='float.*shape'):
        per_sample_losses({'loss': 0.5}, 4)


def test_resuming_ausam_from_a_sam_checkpoint_warns_and_starts_empty():
    sam = build('SAMOptimWrapper')
    ausam = build()
    with pytest.warns(UserWarning, match='empty score table'):
        ausam.load_state_dict(sam.state_dict())
    assert ausam.selection_counts().sum() == 0

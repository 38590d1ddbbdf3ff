"""The step API: the model builds the loss closure, the wrapper takes it."""

import copy
import uuid

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

from ausam_tasks import SAM
from ausam_tasks.engine import SAMOptimWrapper

from .toy import ToyDataset, ToyNet, batch


def build(model, type='AUSAMOptimWrapper', **kw):
    cfg = dict(type=type, optimizer=dict(type='SGD', lr=0.1), **kw)
    return build_optim_wrapper(model, cfg)


def test_mixin_with_a_plain_optim_wrapper_runs_basemodel_train_step():
    torch.manual_seed(0)
    model = ToyNet()
    ref = copy.deepcopy(model)
    data = batch(ToyDataset(8), range(8))
    log = model.train_step(data, build(model, 'OptimWrapper'))
    # By hand: one SGD step on the mean of the per-sample losses.
    x = torch.stack(data['inputs']).float()
    y = torch.stack([s.label for s in data['data_samples']])
    logits = ref(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q - 0.1 * q.grad)
    torch.testing.assert_close(log['loss'], loss.detach())
    want_acc = (logits.argmax(1) == y).float().mean()
    torch.testing.assert_close(log['acc'], want_acc)
    assert 'sam_frac' not in log


def test_wrapper_takes_a_plain_closure_and_matches_the_model_path():
    torch.manual_seed(0)
    model = ToyNet()
    other = copy.deepcopy(model)
    data = batch(ToyDataset(8), range(8))
    ow = build(model, 'SAMOptimWrapper', rho=0.05)
    log = model.train_step(data, ow)
    x = torch.stack(data['inputs']).float()
    y = torch.stack([s.label for s in data['data_samples']])

    def closure(pos=None, with_outputs=False):
        pos = torch.arange(8) if pos is None else pos
        logits = other(x[pos])
        return {'loss_cls': F.cross_entropy(logits, y[pos], reduction='none')}

    ow2 = build(other, 'SAMOptimWrapper', rho=0.05)
    log2 = ow2.update_params_with_closure(closure, torch.arange(8), other)
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(log['loss_perturbed'], log2['loss_perturbed'])
    assert 'acc' in log and 'acc' not in log2  # extras come from the model


def scored(score_average='mean'):
    """AUSAM after a full-batch step on 0..7 and one on 0..3 (init epoch:
    every sample of a batch is trained on and scored)."""
    torch.manual_seed(0)
    # Outside a Runner the wrapper reads the epoch from the latest message
    # hub: make a fresh one at epoch 0, not one an earlier Runner left.
    hub = MessageHub.get_instance(f'scored_{uuid.uuid4().hex}')
    hub.update_info('epoch', 0)
    model = ToyNet()
    ow = build(model, init_epochs=1, score_average=score_average)
    ds = ToyDataset(8)
    model.train_step(batch(ds, range(8)), ow)
    model.train_step(batch(ds, range(4)), ow)
    return ow


@pytest.mark.parametrize('average', ['mean', 'ema'])
def test_public_score_methods_equal_the_table(average):
    ow = scored(average)
    table = ow.state_dict()['sharpness_aware']['scores']
    value, count = table['value'], table['count']
    counts = ow.selection_counts()
    assert counts.dtype == torch.int64
    assert counts[:8].tolist() == [2, 2, 2, 2, 1, 1, 1, 1]
    assert torch.equal(counts, count)
    idx = torch.tensor([5, 0, 3])
    assert torch.equal(ow.selection_counts(idx), count[idx])
    want = value[idx] / count[idx] if average == 'mean' else value[idx]
    got = ow.sample_scores(idx)
    assert got.dtype == torch.float64
    assert torch.equal(got, want)
    seen = torch.arange(8)
    s = ow.sample_scores(seen)
    assert ow.score_stats() == pytest.approx(
        dict(
            scored_frac=8 / len(count),
            score_mean=float(s.mean()),
            score_std=float(s.std()),
            score_min=float(s.min()),
            score_max=float(s.max()),
        )
    )


def test_unscored_samples_read_nan_and_the_table_size_is_fixed_once():
    ow = scored()
    ow.fix_table_sizes(12)
    assert len(ow.selection_counts()) == 12
    assert ow.sample_scores(torch.tensor([11])).isnan().all()
    ow.fix_table_sizes(20)  # already fixed: a no-op
    assert len(ow.selection_counts()) == 12
    with pytest.raises(IndexError, match='outside the score table of 12'):
        ow.sample_scores(torch.tensor([12]))


class NeedsOutputs(SAM):
    """SAM that declares it needs per-sample outputs, as MESA does."""

    needs = frozenset({'outputs'})


class RecordOutputs(SAMOptimWrapper):
    method = NeedsOutputs


class RefusesUnknownModes(ToyNet):
    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode not in ('tensor', 'loss', 'predict'):
            raise RuntimeError(f'Invalid mode "{mode}"')
        return super().forward(inputs, data_samples, mode)


@pytest.mark.parametrize('net', [ToyNet, RefusesUnknownModes])
def test_model_without_outputs_mode_gets_a_clear_error(net):
    model = net()
    ow = RecordOutputs(torch.optim.SGD(model.parameters(), lr=0.1))
    data = batch(ToyDataset(4), range(4))
    with pytest.raises(NotImplementedError, match=r"mode='loss_and_outputs"):
        model.train_step(data, ow)
    with pytest.raises(NotImplementedError, match='README'):
        model.train_step(data, ow)

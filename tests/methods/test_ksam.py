"""K-SAM (Ni et al. 2022), efficient: a no-grad ranking forward of the
whole batch, both SAM passes on the top n by loss."""

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from tests.core.test_step import hand_sam_update
from tests.core.toy import ToyDataset, batch

from .hand import assert_weights, toy, weights, wrapper

RHO = 0.5


def top_positions(model, data, n):
    """By hand: the n highest per-sample losses at w (train-mode BN)."""
    x = torch.stack(data['inputs']).float()
    y = torch.stack([s.label for s in data['data_samples']])
    with torch.no_grad():
        loss = F.cross_entropy(
            copy.deepcopy(model).train()(x), y, reduction='none'
        )
    return sorted(loss.argsort(descending=True)[:n].tolist())


@pytest.mark.parametrize('max_norm', [None, 0.05])
def test_ksam_is_sam_on_the_top_losses(max_norm):
    ds = ToyDataset(16, seed=4)
    data = batch(ds, range(16))
    model = toy()
    pos = top_positions(model, data, 6)
    expected = hand_sam_update(
        copy.deepcopy(model), batch(ds, pos), rho=RHO, clip=max_norm
    )
    kw = {} if max_norm is None else dict(clip_grad=dict(max_norm=max_norm))
    ow = wrapper(model, 'KSAMOptimWrapper', rho=RHO, alpha=6 / 16, **kw)
    log = model.train_step(data, ow)
    assert float(log['sam_frac']) == 6 / 16
    assert_weights(model, expected)


def test_ranking_pass_builds_no_graph_and_sam_passes_see_the_subset():
    ds = ToyDataset(16)
    model = toy()
    seen = []
    model.conv.register_forward_hook(
        lambda m, i, o: seen.append((len(i[0]), o.requires_grad))
    )
    model.train_step(
        batch(ds, range(16)), wrapper(model, 'KSAMOptimWrapper', alpha=0.5)
    )
    assert seen == [(16, False), (8, True), (8, True)]


def test_batchnorm_statistics_are_updated_once_by_the_whole_batch():
    ds = ToyDataset(16)
    data = batch(ds, range(16))
    model = toy()
    reference = copy.deepcopy(model).train()
    with torch.no_grad():
        reference(torch.stack(data['inputs']).float())
    model.train_step(data, wrapper(model, 'KSAMOptimWrapper', alpha=0.25))
    assert model.bn.num_batches_tracked == 1
    assert torch.allclose(model.bn.running_mean, reference.bn.running_mean)
    assert torch.allclose(model.bn.running_var, reference.bn.running_var)
    assert model.bn.momentum == reference.bn.momentum


def test_ausam_topk_selector_takes_the_same_efficient_path():
    ds = ToyDataset(32, seed=5)
    a, b = toy(), toy()
    ow_a = wrapper(a, 'KSAMOptimWrapper', rho=RHO, alpha=0.5)
    ow_b = wrapper(
        b,
        'AUSAMOptimWrapper',
        rho=RHO,
        alpha=0.5,
        selector='topk_loss',
        init_epochs=0,
    )
    for i in range(2):
        data = batch(ds, range(16 * i, 16 * i + 16))
        a.train_step(data, ow_a)
        b.train_step(data, ow_b)
    assert_weights(a, weights(b), atol=0)
    assert a.bn.num_batches_tracked == b.bn.num_batches_tracked == 2
    assert torch.equal(a.bn.running_mean, b.bn.running_mean)


def test_sam_passes_keep_every_running_statistic_frozen():
    """After the ranking pass, modules' sam_second_pass() contexts (QAT
    observers) are active in both SAM passes, as BatchNorm's freeze is."""
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
    model.train_step(
        batch(ToyDataset(8), range(8)),
        wrapper(model, 'KSAMOptimWrapper', alpha=0.5),
    )
    assert seen == [False, True, True]

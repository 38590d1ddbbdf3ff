"""Selection diagnostics (plain PyTorch): per-sample gradients, DLP,
correlations, subset-gradient errors and coverage against independent
computations."""

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn
from torch.func import functional_call, grad, vmap

from ausam_tasks.diagnostics import (
    batch_dlp,
    coverage,
    draw_subsets,
    pearson,
    per_sample_grad_norms,
    per_sample_grads,
    probe_diagnostics,
    ranks,
    spearman,
    subset_gradient_errors,
    subset_weights,
)


def tiny_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 4),
    )
    # Non-trivial running statistics, then eval mode: per-sample losses
    # no longer depend on the rest of the batch.
    net.train()
    with torch.no_grad():
        net(torch.randn(32, 2, 5, 5) * 2 + 1)
    return net.eval()


def data(size=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(size, 2, 5, 5, generator=g), torch.randint(
        0, 4, (size,), generator=g
    )


def closure_for(net, x, y):
    def closure(pos):
        xb, yb = (x, y) if pos is None else (x[pos], y[pos])
        return {'loss': F.cross_entropy(net(xb), yb, reduction='none')}

    return closure


def flat_grads_vmap(net, x, y):
    """Independent per-sample gradients with torch.func (P, d)."""
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach() for k, v in net.named_buffers()}

    def loss(p, xi, yi):
        out = functional_call(net, (p, buffers), (xi[None],))
        return F.cross_entropy(out, yi[None])

    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([g[k].reshape(len(x), -1) for k in params], dim=1)


def test_per_sample_grads_match_torch_func_and_weighted_sums():
    net = tiny_net()
    x, y = data()
    params = list(net.parameters())
    G = flat_grads_vmap(net, x, y).double()
    w = torch.rand(len(x), 3, generator=torch.Generator().manual_seed(2))
    res = per_sample_grads(closure_for(net, x, y), params, len(x), w)
    torch.testing.assert_close(res.norms, G.norm(dim=1), rtol=1e-5, atol=0)
    torch.testing.assert_close(
        res.sums.double(), w.double().T @ G, rtol=1e-5, atol=1e-7
    )
    chunked = per_sample_grads(closure_for(net, x, y), params, len(x), w, 5)
    torch.testing.assert_close(chunked.sums, res.sums, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        expect = F.cross_entropy(net(x), y, reduction='none').double()
    torch.testing.assert_close(res.losses, expect, rtol=1e-6, atol=0)
    assert all(p.grad is None for p in params)  # autograd.grad only
    norms = per_sample_grad_norms(closure_for(net, x, y), params, len(x))
    torch.testing.assert_close(norms, res.norms, rtol=0, atol=0)


def test_batch_gradient_is_the_mean_of_per_sample_gradients_in_eval_mode():
    net = tiny_net()
    x, y = data()
    params = list(net.parameters())
    w = subset_weights(len(x), [])
    res = per_sample_grads(closure_for(net, x, y), params, len(x), w)
    loss = F.cross_entropy(net(x), y)
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, params)])
    torch.testing.assert_close(res.sums[0], g, rtol=1e-5, atol=1e-7)


def hand_dlp(net, x, y, rho):
    """DLP with eps = rho g / ||g|| computed here, on a copy of the net."""
    params = list(net.parameters())
    loss_w = F.cross_entropy(net(x), y, reduction='none')
    g = torch.autograd.grad(loss_w.mean(), params)
    norm = torch.sqrt(sum((t**2).sum() for t in g))
    twin = tiny_net()
    twin.load_state_dict(net.state_dict())
    with torch.no_grad():
        for p, t in zip(twin.parameters(), g):
            p.add_(rho * t / norm)
        loss_eps = F.cross_entropy(twin(x), y, reduction='none')
    return (loss_eps - loss_w).abs().detach().double()


def test_batch_dlp_matches_a_hand_sam_step_and_restores_weights():
    net = tiny_net()
    x, y = data()
    before = [p.detach().clone() for p in net.parameters()]
    dlp = batch_dlp(closure_for(net, x, y), net.parameters(), rho=0.3)
    torch.testing.assert_close(
        dlp, hand_dlp(net, x, y, 0.3), rtol=1e-4, atol=1e-7
    )
    for p, b in zip(net.parameters(), before):
        assert torch.equal(p, b)
        assert p.grad is None


def test_probe_diagnostics_dlp_and_errors_against_direct_computation():
    net = tiny_net()
    x, y = data(size=16)
    closure = closure_for(net, x, y)
    params = list(net.parameters())
    before = [p.detach().clone() for p in params]
    scores = torch.linspace(0.1, 2.0, 16).double()
    scores[3] = math.nan  # never scored
    res = probe_diagnostics(
        closure,
        params,
        16,
        rho=0.3,
        alpha=0.5,
        draws=3,
        seed=7,
        scores=scores,
    )
    for p, b in zip(params, before):
        assert torch.equal(p, b)
    # DLP from per-sample sums equals a hand SAM step on the whole batch.
    torch.testing.assert_close(
        res['dlp'], hand_dlp(net, x, y, 0.3), rtol=1e-4, atol=1e-7
    )
    G = flat_grads_vmap(net, x, y).double()
    torch.testing.assert_close(
        res['grad_norm'], G.norm(dim=1), rtol=1e-5, atol=0
    )
    assert res['subset_size'] == 8
    assert res['dlp_spearman'] == pytest.approx(
        stats.spearmanr(res['dlp'], G.norm(dim=1)).statistic, abs=1e-9
    )
    seen = ~torch.isnan(scores)
    assert res['adlp_scored_frac'] == 15 / 16
    assert res['adlp_spearman'] == pytest.approx(
        stats.spearmanr(scores[seen], G.norm(dim=1)[seen]).statistic,
        abs=1e-9,
    )
    # Errors at w: the same draws, each g_S by a batch backward pass.
    subsets = draw_subsets(16, 0.5, 3, 7, scores, 0.1, 0.5)
    g_b = torch.cat(
        [
            t.reshape(-1)
            for t in torch.autograd.grad(closure(None)['loss'].mean(), params)
        ]
    ).double()
    for kind in ('uniform', 'adlp'):
        errs = []
        for pos in subsets[kind]:
            assert len(pos) == 8 and len(pos.unique()) == 8
            loss = closure(pos)['loss'].mean()
            g_s = torch.cat(
                [t.reshape(-1) for t in torch.autograd.grad(loss, params)]
            ).double()
            errs.append(float((g_s - g_b).norm() / g_b.norm()))
        assert res[f'err_{kind}_w'] == pytest.approx(sum(errs) / 3, rel=1e-4)
        assert 0 < res[f'err_{kind}_eps'] < 10


def test_subset_gradient_errors_by_hand():
    sums = torch.tensor([[3.0, 4.0], [3.0, 4.0], [0.0, 0.0], [6.0, 8.0]])
    torch.testing.assert_close(
        subset_gradient_errors(sums), torch.tensor([0.0, 1.0, 1.0]).double()
    )
    assert torch.isnan(subset_gradient_errors(torch.zeros(2, 3))).all()
    w = subset_weights(4, [torch.tensor([0, 2])])
    torch.testing.assert_close(
        w, torch.tensor([[0.25, 0.5], [0.25, 0], [0.25, 0.5], [0.25, 0]])
    )
    with pytest.raises(ValueError, match='repeats'):
        subset_weights(4, [torch.tensor([1, 1])])


@pytest.mark.parametrize('seed', [0, 1])
def test_correlations_equal_scipy(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40, generator=g).double()
    y = x + torch.randn(40, generator=g).double()
    tied = torch.randint(0, 5, (40,), generator=g).double()  # many ties
    for a, b in ((x, y), (tied, y), (x, tied), (tied, tied.flip(0))):
        assert spearman(a, b) == pytest.approx(
            stats.spearmanr(a, b).statistic, abs=1e-12
        )
        assert pearson(a, b) == pytest.approx(
            stats.pearsonr(a, b).statistic, abs=1e-12
        )
    torch.testing.assert_close(
        ranks(torch.tensor([3.0, 1.0, 3.0, 2.0])),
        torch.tensor([3.5, 1.0, 3.5, 2.0]).double(),
    )
    assert math.isnan(spearman(torch.ones(5), x[:5]))
    # Pairs with a NaN (never-scored samples) are left out.
    xn = torch.cat([x, torch.tensor([math.nan, 1.0]).double()])
    yn = torch.cat([y, torch.tensor([5.0, math.inf]).double()])
    assert spearman(xn, yn) == pytest.approx(spearman(x, y), abs=1e-12)
    assert pearson(xn, yn) == pytest.approx(pearson(x, y), abs=1e-12)
    assert math.isnan(pearson(x[:1], y[:1]))


def test_adlp_draws_favour_high_scores_and_uniform_draws_do_not():
    scores = torch.cat([torch.full((8,), 10.0), torch.full((8,), 1.0)])
    d = draw_subsets(16, 0.25, 400, 0, scores.double(), 0.1, 1.0)
    hits_adlp = torch.zeros(16)
    hits_unif = torch.zeros(16)
    for a, u in zip(d['adlp'], d['uniform']):
        assert len(a) == len(u) == 4
        hits_adlp[a] += 1
        hits_unif[u] += 1
    # Normalised weights 1.0 vs 0.1: the high half is drawn far more.
    assert hits_adlp[:8].sum() > 4 * hits_adlp[8:].sum()
    assert abs(hits_unif[:8].sum() - hits_unif[8:].sum()) < 0.15 * 1600


def test_coverage_by_hand():
    counts = torch.tensor([3, 1, 1, 5, 2, 1])
    base = torch.tensor([1, 1, 1, 1, 1, 1])
    c = coverage(counts, base)
    assert c['hist'] == [3, 1, 1, 0, 1]  # since base: 2,0,0,4,1,0
    assert c['never_frac'] == 0.5
    assert c['mean'] == pytest.approx(7 / 6)
    assert (c['min'], c['max']) == (0, 4)
    assert c['p50'] == pytest.approx(0.5)
    assert coverage(counts)['never_frac'] == 0.0
    with pytest.raises(ValueError, match='below'):
        coverage(base, counts)

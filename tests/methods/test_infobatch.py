"""InfoBatch's core (kept set, weights, annealing) by exact enumeration, and
the steps of SGD+Info, SAM+Info*, SAM+Info and AUSAM's importance weights
against hand computations on least squares (fp64)."""

import itertools
import math

import pytest
import torch

from ausam_tasks.infobatch import InfoBatch
from ausam_tasks.methods import Plain
from ausam_tasks.sam import AUSAM, SAM
from ausam_tasks.selection import selection_probs

LR, RHO = 0.1, 0.2


def problem(n=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    w0 = torch.randn(3, generator=g, dtype=torch.float64)
    return x, y, w0


def per_sample_grads(x, y, w):
    """Row i: d/dw of (x_i . w - y_i)^2 / 2."""
    return x * (x @ w - y)[:, None]


def scored(scores, **kw) -> InfoBatch:
    info = InfoBatch(len(scores), num_epochs=10, **kw)
    info.update(torch.arange(len(scores)), torch.tensor(scores))
    return info


# ------------------------------------------------------------ the core


@pytest.mark.parametrize('prune_ratio', [0.5, 0.3, 0.7])
def test_expected_pruned_gradient_is_the_full_gradient(prune_ratio):
    """Every kept set the draw can give, each equally likely (a uniform
    subset of the well-learned): the mean of sum_kept w_i g_i over them is
    sum_i g_i exactly, also when (1 - r) n_well is not an integer."""
    x, y, w0 = problem(9)
    g = per_sample_grads(x, y, w0)
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 2.0, 3.0, 4.0, 5.0]  # mean 1.72
    info = scored(scores, prune_ratio=prune_ratio)
    well = info.well_learned()
    assert torch.equal(well, torch.tensor([True] * 5 + [False] * 4))
    n_keep = int((1 - prune_ratio) * 5)
    kept, weights = info.plan(0)
    chosen = sorted(set(kept.tolist()) & set(range(5)))
    assert len(chosen) == n_keep
    assert set(range(5, 9)) <= set(kept.tolist())  # the rest always kept
    assert len(kept) == 4 + n_keep and len(set(kept.tolist())) == len(kept)
    assert torch.all(weights[chosen] == 5 / n_keep)
    others = [i for i in range(9) if i not in chosen]
    assert torch.all(weights[others] == 1.0)
    # Exact enumeration over the draws.
    total = torch.zeros(3, dtype=torch.float64)
    subsets = list(itertools.combinations(range(5), n_keep))
    for sub in subsets:
        keep = list(sub) + list(range(5, 9))
        w = torch.ones(9, dtype=torch.float64)
        w[list(sub)] = weights[chosen[0]]
        total += (w[keep, None] * g[keep]).sum(0)
    torch.testing.assert_close(
        total / len(subsets), g.sum(0), rtol=1e-12, atol=1e-12
    )


def test_the_draw_is_uniform_over_the_well_learned():
    """Over many epochs each well-learned sample is kept about n_keep /
    n_well of the time (seeded by epoch)."""
    info = scored([0.1, 0.2, 0.3, 0.4, 5.0, 6.0], prune_ratio=0.5)
    info.num_epochs = 10_000
    counts = torch.zeros(6)
    for epoch in range(2000):
        counts[info.plan(epoch)[0]] += 1
    assert torch.all(counts[4:] == 2000)
    torch.testing.assert_close(
        counts[:4] / 2000, torch.full((4,), 0.5), atol=0.05, rtol=0
    )


def test_annealing_stops_pruning_from_ceil_delta_epochs():
    info = scored([0.1, 0.2, 5.0, 6.0], prune_ratio=0.5, delta=0.875)
    info.num_epochs = 10  # ceil(8.75) = 9
    assert [info.pruning(e) for e in range(10)] == [True] * 9 + [False]
    kept, weights = info.plan(8)
    assert len(kept) == 3 and weights.max() == 2.0
    kept, weights = info.plan(9)
    assert sorted(kept.tolist()) == [0, 1, 2, 3]
    assert torch.all(weights == 1.0)


def test_unscored_samples_are_kept_and_the_first_epoch_is_whole():
    info = InfoBatch(6, num_epochs=10)
    kept, weights = info.plan(0)
    assert sorted(kept.tolist()) == list(range(6)) and weights.eq(1).all()
    # Only samples 0-2 scored: 3 and 4, 5 stay out of the mean, never pruned.
    info.update(torch.tensor([0, 1, 2]), torch.tensor([0.1, 0.2, 3.0]))
    assert info.well_learned().tolist() == [True, True] + [False] * 4
    kept, _ = info.plan(1)
    assert {2, 3, 4, 5} <= set(kept.tolist()) and len(kept) == 5


def test_the_plan_is_a_function_of_seed_epoch_and_scores():
    a, b = (scored([0.1, 0.2, 0.3, 0.4, 9.0], seed=7) for _ in range(2))
    assert torch.equal(a.plan(3)[0], b.plan(3)[0])
    c = scored([0.1, 0.2, 0.3, 0.4, 9.0], seed=8)
    assert any(
        not torch.equal(a.plan(e)[0], c.plan(e)[0]) for e in range(4, 9)
    )
    # Drawn once per epoch: later score updates do not change it.
    before = a.plan(9 - 1)[0].clone()
    a.update(torch.arange(5), torch.tensor([9.0, 9.0, 9.0, 0.1, 0.1]))
    assert torch.equal(a.plan(8)[0], before)
    # The state round trip keeps scores and the epoch's plan.
    d = InfoBatch(5, num_epochs=10)
    d.load_state_dict(a.state_dict())
    assert torch.equal(d.plan(8)[0], before)
    assert torch.equal(d.scores, a.scores)


@pytest.mark.parametrize(
    'kw, match',
    [
        (dict(prune_ratio=1.0), r'prune_ratio must be in \[0, 1\)'),
        (dict(prune_ratio=-0.1), r'prune_ratio must be in \[0, 1\)'),
        (dict(delta=0.0), r'delta must be in \(0, 1\]'),
        (dict(delta=1.5), r'delta must be in \(0, 1\]'),
    ],
)
def test_bad_settings_name_themselves(kw, match):
    with pytest.raises(ValueError, match=match):
        InfoBatch(4, **kw)


# ------------------------------------------------------------ the steps


def run_step(core_cls, weights: dict, **settings):
    x, y, w0 = problem()
    w = torch.nn.Parameter(w0.clone())
    core = core_cls(torch.optim.SGD([w], lr=LR), **settings)

    def closure(pos=None):
        rows = slice(None) if pos is None else pos
        return {'loss': (x[rows] @ w - y[rows]) ** 2 / 2}

    res = core.step(closure, weights=weights, sample_idx=torch.arange(8))
    return w.detach(), res


def infobatch_weights():
    return torch.tensor([2.0, 1, 1, 2, 1, 2, 1, 1], dtype=torch.float64)


def test_sgd_info_step_is_the_weighted_mean_gradient():
    x, y, w0 = problem()
    v = infobatch_weights()
    g = (v[:, None] * per_sample_grads(x, y, w0)).mean(0)
    w, res = run_step(Plain, {'first': v})
    torch.testing.assert_close(w, w0 - LR * g, rtol=1e-12, atol=1e-12)
    # The logged / scored loss is the unweighted per-sample loss.
    torch.testing.assert_close(res.loss_before, (x @ w0 - y) ** 2 / 2)
    assert res.sam is None  # no SAM passes: the wrapper logs no sam_frac


@pytest.mark.parametrize('stage', ['first', 'second'])
def test_sam_info_weighs_one_pass_only(stage):
    """SAM+Info* (first): eps from the weighted gradient at w, update with
    the unweighted gradient at w + eps; SAM+Info (second): the reverse."""
    x, y, w0 = problem()
    v = infobatch_weights()
    ones = torch.ones(8, dtype=torch.float64)
    v1, v2 = (v, ones) if stage == 'first' else (ones, v)
    g1 = (v1[:, None] * per_sample_grads(x, y, w0)).mean(0)
    w_adv = w0 + RHO * g1 / g1.norm()
    g2 = (v2[:, None] * per_sample_grads(x, y, w_adv)).mean(0)
    w, res = run_step(SAM, {stage: v}, rho=RHO)
    torch.testing.assert_close(w, w0 - LR * g2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.loss_after, (x @ w_adv - y) ** 2 / 2)


def test_ausam_importance_weights_follow_their_formula():
    """1 / (K p_i) with p_i of Eq. 7 on the score table, in both passes of
    the drawn subset; a uniform selector's are 1."""
    x, y, w0 = problem()
    settings = dict(
        rho=RHO,
        alpha=0.5,
        init_epochs=0,
        warmup_epochs=0,
        num_samples=8,
        importance_weights=True,
        seed=4,
    )
    w = torch.nn.Parameter(w0.clone())
    core = AUSAM(torch.optim.SGD([w], lr=LR), **settings)
    dlp = torch.tensor([0.1, 0.5, 0.2, 0.9, 0.3, 0.05, 0.7, 0.4])
    core.table.update(torch.arange(8), dlp)
    idx = torch.arange(8)
    p = selection_probs(dlp.double(), 0.1, 0.5)
    expected = 1.0 / (8 * p)
    torch.testing.assert_close(core.importance(idx, 5.0), expected)
    assert math.isclose(float((p * expected).sum()), 1.0)  # sum p / (K p)

    # The step: the drawn subset S (the same draw as without weights),
    # both passes weighted by 1 / (K p_i) over S.
    pos = core.select(idx, 5.0)

    def closure(rows=None):
        rows = slice(None) if rows is None else rows
        return {'loss': (x[rows] @ w - y[rows]) ** 2 / 2}

    v = expected[pos]
    g1 = (v[:, None] * per_sample_grads(x[pos], y[pos], w0)).mean(0)
    w_adv = w0 + RHO * g1 / g1.norm()
    g2 = (v[:, None] * per_sample_grads(x[pos], y[pos], w_adv)).mean(0)
    res = core.step(closure, sample_idx=idx, epoch=5.0)
    assert torch.equal(res.positions, pos)
    torch.testing.assert_close(
        w.detach(), w0 - LR * g2, rtol=1e-12, atol=1e-12
    )
    uniform = AUSAM(
        torch.optim.SGD([torch.nn.Parameter(w0.clone())], lr=LR),
        **{**settings, 'importance_weights': True},
        selector='uniform',
    )
    assert torch.all(uniform.importance(idx, 5.0) == 1.0)


def test_importance_weights_refuse_a_deterministic_selector():
    with pytest.raises(ValueError, match='importance_weights needs a random'):
        AUSAM(
            torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR),
            selector='topk_loss',
            importance_weights=True,
        )


def test_fresh_scores_keep_the_latest_dlp():
    from ausam_tasks.scores import ScoreTable

    table = ScoreTable(3, 'last')
    table.update(
        torch.tensor([0, 1]), torch.tensor([0.5, 0.2], dtype=torch.float64)
    )
    table.update(
        torch.tensor([0, 2]), torch.tensor([0.1, 0.7], dtype=torch.float64)
    )
    assert table.lookup(torch.arange(3)).tolist() == [0.1, 0.2, 0.7]

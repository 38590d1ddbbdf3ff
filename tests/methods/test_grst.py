"""G-RST against a hand computation of the GNP step on least squares."""

import pytest
import torch

from ausam_tasks.methods import GRST

LR, RHO, ALPHA = 0.1, 0.2, 0.8


def problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, generator=g, dtype=torch.float64)
    w0 = torch.randn(3, generator=g, dtype=torch.float64)
    return x, y, w0


def grad(x, y, w):
    """d/dw of mean_i (x_i . w - y_i)^2 / 2."""
    return x.T @ (x @ w - y) / len(y)


def run(steps=1, **settings):
    x, y, w0 = problem()
    w = torch.nn.Parameter(w0.clone())
    core = GRST(torch.optim.SGD([w], lr=LR), **settings)

    def closure(pos=None):
        return {'loss': (x @ w - y) ** 2 / 2}

    results = [core.step(closure) for _ in range(steps)]
    return w.detach(), results


@pytest.mark.parametrize('norm_g1', [True, False])
def test_a_gnp_step_equals_the_hand_computation(norm_g1):
    x, y, w0 = problem()
    g1 = grad(x, y, w0)
    g2 = grad(x, y, w0 + RHO * g1 / g1.norm())
    mixed = g1 / g1.norm() if norm_g1 else g1
    expected = w0 - LR * ((1 - ALPHA) * mixed + ALPHA * g2)
    w, (res,) = run(rho=RHO, alpha=ALPHA, norm_g1=norm_g1, p_start=1.0)
    assert res.sam is True
    torch.testing.assert_close(w, expected, rtol=1e-12, atol=1e-12)


def test_alpha_one_is_a_sam_step_and_p_zero_a_plain_step():
    x, y, w0 = problem()
    g1 = grad(x, y, w0)
    sam = w0 - LR * grad(x, y, w0 + RHO * g1 / g1.norm())
    w, _ = run(rho=RHO, alpha=1.0, p_start=1.0)
    torch.testing.assert_close(w, sam, rtol=1e-12, atol=1e-12)
    w, (res,) = run(rho=RHO, alpha=ALPHA, p_start=0.0)
    assert res.sam is False
    torch.testing.assert_close(w, w0 - LR * g1, rtol=1e-12, atol=1e-12)


def test_the_draws_are_rst_draws():
    """The same seed and p give the same SAM/plain sequence as RST."""
    from ausam_tasks.methods import RST

    _, results = run(steps=12, rho=RHO, p_start=0.5, seed=4)
    rst = RST(
        torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1),
        p_start=0.5,
        seed=4,
    )
    draws = []
    for t in range(12):
        rst.num_steps = t
        draws.append(rst.draw(0.0))
    assert [r.sam for r in results] == draws
    assert len(set(draws)) == 2


@pytest.mark.parametrize(
    'settings, match',
    [
        (dict(rho=0.0), r'rho \(the GNP radius r\) must be > 0'),
        (dict(alpha=-0.1), r'alpha must be in \[0, 1\]'),
        (dict(alpha=1.1), r'alpha must be in \[0, 1\]'),
        (dict(p_start=1.5), r'p_start is a probability'),
    ],
)
def test_bad_settings_are_refused(settings, match):
    w = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match=match):
        GRST(torch.optim.SGD([w], lr=0.1), **settings)

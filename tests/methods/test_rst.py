"""RST (Zhao et al. 2022): each step is SAM or a plain step, drawn from a
seeded, resumable Bernoulli stream with a scheduled probability."""

import pytest
import torch
from mmengine.logging import MessageHub

from ausam_tasks.methods import RST
from tests.core.toy import ToyDataset, batch

from .hand import (
    assert_weights,
    clip,
    grad,
    sam_grads,
    sgd,
    toy,
    weights,
    wrapper,
)

RHO = 0.5


def data_batches(n, size=16):
    ds = ToyDataset(size * n, seed=2)
    return [batch(ds, range(size * i, size * i + size)) for i in range(n)]


@pytest.mark.parametrize('max_norm', [None, 0.05])
def test_each_step_is_the_hand_sam_or_sgd_step_it_logs(max_norm):
    data = data_batches(8)
    model = toy()
    kw = {} if max_norm is None else dict(clip_grad=dict(max_norm=max_norm))
    ow = wrapper(model, 'RSTOptimWrapper', rho=RHO, p_start=0.5, seed=3, **kw)
    w, kinds = weights(model), []
    for d in data:
        sam = float(model.train_step(d, ow)['sam_frac']) == 1.0
        g = sam_grads(model, d, w, RHO)[1] if sam else grad(model, d, w)
        w = sgd(w, g if max_norm is None else clip(g, max_norm))
        kinds.append(sam)
    assert_weights(model, w)
    assert 0 < sum(kinds) < len(kinds)  # both kinds occurred


def test_draws_are_a_function_of_seed_and_step_only():
    def stream(seed, steps=200, p=0.3):
        core = RST(torch.optim.SGD([torch.zeros(1)], lr=0.1), p_start=p)
        core.seed = seed
        out = []
        for t in range(steps):
            core.num_steps = t
            out.append(core.draw(0.0))
        return out

    a = stream(0)
    assert a == stream(0)  # reproducible
    assert a != stream(1)
    # Bernoulli(0.3): 200 draws land well inside 0.3 +- 5 sigma.
    assert abs(sum(a) / 200 - 0.3) < 5 * (0.3 * 0.7 / 200) ** 0.5


def test_linear_schedule_ramps_with_the_runner_progress():
    model = toy()
    ow = wrapper(
        model,
        'RSTOptimWrapper',
        p_start=0.0,
        p_end=1.0,
        schedule='linear',
    )
    assert ow.core.probability(0.25) == pytest.approx(0.25)
    hub = MessageHub.get_instance('test_rst_linear')
    hub.update_info('max_iters', 10)
    ds = ToyDataset(16)
    hub.update_info('iter', 0)  # p = 0: always a plain step
    assert [
        float(model.train_step(batch(ds, range(16)), ow)['sam_frac'])
        for _ in range(3)
    ] == [0.0] * 3
    hub.update_info('iter', 10)  # p = 1: always SAM
    assert float(model.train_step(batch(ds, range(16)), ow)['sam_frac']) == 1


def test_p_one_is_sam_and_p_zero_is_the_base_optimizer():
    data = data_batches(2)
    a, b, c = toy(), toy(), toy()
    ow_a = wrapper(a, 'RSTOptimWrapper', rho=RHO, p_start=1.0)
    ow_b = wrapper(b, 'SAMOptimWrapper', rho=RHO)
    ow_c = wrapper(c, 'RSTOptimWrapper', rho=RHO, p_start=0.0)
    w = weights(c)
    for d in data:
        a.train_step(d, ow_a)
        b.train_step(d, ow_b)
        c.train_step(d, ow_c)
        w = sgd(w, grad(c, d, w))
    assert_weights(a, weights(b), atol=0)
    assert_weights(c, w)

"""LookSAM-k against a hand computation of Algorithm 1 (Liu et al. 2022)."""

import pytest
import torch

from tests.core.toy import ToyDataset, batch

from .hand import (
    assert_weights,
    clip,
    dot,
    grad,
    norm,
    sam_grads,
    sgd,
    toy,
    weights,
    wrapper,
)

RHO, ALPHA = 0.5, 0.7


def hand_looksam(model, batches, k, alpha, max_norm=None):
    """Weights after LookSAM-k on ``batches``, and the last g_v."""
    w, g_v = weights(model), None
    for t, data in enumerate(batches):
        if t % k == 0:
            g, g_s = sam_grads(model, data, w, RHO)
            # g_v = g_s - ||g_s|| cos(g, g_s) g / ||g||
            cos = dot(g, g_s) / (norm(g) * norm(g_s))
            g_v = {n: g_s[n] - norm(g_s) * cos * g[n] / norm(g) for n in g}
            update = g_s
        else:
            g = grad(model, data, w)
            ratio = alpha * norm(g) / norm(g_v)
            update = {n: g[n] + ratio * g_v[n] for n in g}
        if max_norm is not None:
            update = clip(update, max_norm)
        w = sgd(w, update)
    return w, g_v


def batches(n, size=16):
    ds = ToyDataset(size * n, seed=1)
    return [batch(ds, range(size * i, size * i + size)) for i in range(n)]


@pytest.mark.parametrize('k', [1, 3])
def test_looksam_equals_hand_computation(k):
    data = batches(5)
    model = toy()
    expected, g_v = hand_looksam(model, data, k, ALPHA)
    ow = wrapper(model, 'LookSAMOptimWrapper', rho=RHO, k=k, alpha=ALPHA)
    logs = [model.train_step(d, ow) for d in data]
    assert_weights(model, expected)
    # Full SAM at t = 0 and 3 (k=3); one-pass steps in between.
    want = [1.0 if t % k == 0 else 0.0 for t in range(5)]
    assert [float(log['sam_frac']) for log in logs] == want
    names = [n for n, _ in model.named_parameters()]
    for n, v in zip(names, ow.core.g_v):
        assert torch.allclose(v, g_v[n], atol=1e-6), n


def test_stored_component_is_orthogonal_to_the_plain_gradient():
    data = batches(1)
    model = toy()
    g = grad(model, data[0], weights(model))
    ow = wrapper(model, 'LookSAMOptimWrapper', rho=RHO, k=5)
    model.train_step(data[0], ow)
    g_v = dict(zip(g, ow.core.g_v))
    assert abs(float(dot(g, g_v))) < 1e-6 * float(norm(g) * norm(g_v))
    assert float(norm(g_v)) > 0


def test_intermediate_steps_cost_one_forward_and_backward():
    data = batches(4)
    model = toy()
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    ow = wrapper(model, 'LookSAMOptimWrapper', rho=RHO, k=3)
    per_step = []
    for d in data:
        before = len(calls)
        model.train_step(d, ow)
        per_step.append(len(calls) - before)
    assert per_step == [2, 1, 1, 2]


def test_clip_grad_clips_the_reused_update():
    data = batches(3)
    model = toy()
    expected, _ = hand_looksam(model, data, 3, ALPHA, max_norm=0.05)
    ow = wrapper(
        model,
        'LookSAMOptimWrapper',
        rho=RHO,
        k=3,
        alpha=ALPHA,
        clip_grad=dict(max_norm=0.05),
    )
    for d in data:
        model.train_step(d, ow)
    assert_weights(model, expected)


def test_alpha_zero_reuses_nothing():
    data = batches(2)
    a, b = toy(), toy()
    ow = wrapper(a, 'LookSAMOptimWrapper', rho=RHO, k=2, alpha=0.0)
    for d in data:
        a.train_step(d, ow)
    w = weights(b)
    w = sgd(w, sam_grads(b, data[0], w, RHO)[1])
    w = sgd(w, grad(b, data[1], w))
    assert_weights(a, w)


def test_a_sam_checkpoint_without_g_v_starts_with_a_sam_step():
    data = batches(2)
    sam_model = toy()
    sam_ow = wrapper(sam_model, 'SAMOptimWrapper', rho=RHO)
    sam_model.train_step(data[0], sam_ow)
    model = toy()
    model.load_state_dict(sam_model.state_dict())
    ow = wrapper(model, 'LookSAMOptimWrapper', rho=RHO, k=5)
    ow.load_state_dict(sam_ow.state_dict())
    assert ow.core.num_steps == 1 and ow.core.g_v is None
    log = model.train_step(data[1], ow)
    assert float(log['sam_frac']) == 1.0 and ow.core.g_v is not None

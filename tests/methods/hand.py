"""Hand computations of gradients and updates for the methods' golden
tests: plain autograd on a copy of the weights, nothing from the package."""

import torch
from mmengine.optim import build_optim_wrapper

from tests.core.test_step import hand_loss
from tests.core.toy import ToyNet

LR = 0.1


def toy(seed=0, **kw):
    torch.manual_seed(seed)
    return ToyNet(**kw)


def wrapper(model, type, optimizer=None, **kw):
    cfg = dict(type=type, optimizer=optimizer or dict(type='SGD', lr=LR), **kw)
    return build_optim_wrapper(model, cfg)


def weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def grad(model, data, w):
    """{name: d mean-loss / d w} at the weights ``w``."""
    w = {n: v.detach().clone().requires_grad_() for n, v in w.items()}
    g = torch.autograd.grad(hand_loss(model, data, w), list(w.values()))
    return dict(zip(w, g))


def norm(d):
    return torch.sqrt(sum((v**2).sum() for v in d.values()))


def dot(a, b):
    return sum((a[n] * b[n]).sum() for n in a)


def sam_grads(model, data, w, rho):
    """(g at w, g_s at w + rho g / ||g||), SAM's Eq. 2-3."""
    g = grad(model, data, w)
    n = norm(g)
    w2 = {k: w[k] + rho * g[k] / n for k in w}
    return g, grad(model, data, w2)


def clip(g, max_norm):
    """torch.nn.utils.clip_grad_norm_'s rule."""
    coef = min(1.0, max_norm / (norm(g).item() + 1e-6))
    return {k: v * coef for k, v in g.items()}


def sgd(w, g, lr=LR):
    return {k: w[k] - lr * g[k] for k in w}


def assert_weights(model, expected, atol=1e-6):
    for n, p in model.named_parameters():
        assert torch.allclose(p, expected[n], atol=atol, rtol=1e-5), n

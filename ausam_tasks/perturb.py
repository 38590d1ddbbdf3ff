"""Moving the weights and back: the SAM perturbation (Eq. 2), the exact
restore, and the context of a forward at perturbed weights."""

import contextlib
from typing import Iterator, List, Optional, Sequence

import torch
from torch import nn


@torch.no_grad()
def perturbation(
    params: List[torch.Tensor],
    rho: float,
    adaptive: bool = False,
    eta: float = 0.01,
) -> List[torch.Tensor]:
    """eps = rho * g / ||g|| (Eq. 2), or ASAM's rho * T^2 g / ||T g|| with
    T = |w| + eta (Kwon et al. 2021). A zero gradient gives eps = 0."""
    grads = [p.grad for p in params]
    if adaptive:
        t = [p.abs().add_(eta) for p in params]
        tg = torch._foreach_mul(t, grads)
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tg)))
        eps = torch._foreach_mul(tg, t)
    else:
        norm = torch.linalg.vector_norm(
            torch.stack(torch._foreach_norm(grads))
        )
        eps = [g.clone() for g in grads]
    # If ||g|| == 0 every g is 0, so eps is 0 whatever the clamp divides by.
    torch._foreach_mul_(eps, rho / norm.clamp_min(1e-12))
    return eps


@contextlib.contextmanager
def perturbed(
    params: Sequence[torch.Tensor], eps: Sequence[torch.Tensor]
) -> Iterator[None]:
    """w <- w + eps inside the block; w is restored bit-exactly after
    (from a copy, not by subtracting eps)."""
    params = list(params)
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        torch._foreach_add_(params, list(eps))
    try:
        yield
    finally:
        with torch.no_grad():
            torch._foreach_copy_(params, saved)


@contextlib.contextmanager
def frozen_bn_stats(model: Optional[nn.Module]) -> Iterator[None]:
    """Forward without updating BatchNorm running statistics (the second pass
    must not count the perturbed weights' batch twice). Momentum 0 keeps the
    running mean/var; the batch counter is put back afterwards."""
    bns = (
        []
        if model is None
        else [
            m
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats
            and m.training
        ]
    )
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(bns, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


@contextlib.contextmanager
def second_pass(model: Optional[nn.Module]) -> Iterator[None]:
    """Context of a forward whose running statistics must not move (at
    w + eps, or after K-SAM's ranking pass): BatchNorm statistics frozen,
    and the ``sam_second_pass()`` context of every module that defines one
    entered (e.g. QAT activation observers that must keep their ranges)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(frozen_bn_stats(model))
        for m in [] if model is None else model.modules():
            enter = getattr(m, 'sam_second_pass', None)
            if callable(enter):
                stack.enter_context(enter())
        yield


def frozen_stats_closure(closure, model: Optional[nn.Module]):
    """``closure`` with running statistics frozen (``second_pass``)."""
    from .step import Chunks

    if isinstance(closure, Chunks):  # stays one micro-batch at a time
        parts = [frozen_stats_closure(c, model) for c in closure.parts]
        return Chunks(parts, closure.sizes)

    def run(positions=None, **kwargs):
        with second_pass(model):
            return closure(positions, **kwargs)

    run.net = getattr(closure, 'net', None)  # DDP's no_sync for the passes
    return run

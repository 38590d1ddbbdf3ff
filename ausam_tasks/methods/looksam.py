"""LookSAM (Liu et al. 2022, "Towards Efficient and Scalable
Sharpness-Aware Minimization", CVPR; Algorithm 1)."""

import warnings
from typing import List, Optional

import torch

from ..sam import SAM
from ..step import Closure, StepContext, StepResult


class LookSAM(SAM):
    """SAM every ``k`` steps, a reused SAM direction in between.

    Every k-th step (t mod k = 0) is a full SAM step with g = grad L(w) and
    g_s = grad L(w + eps); it stores the part of g_s orthogonal to g,
    g_v = g_s - ||g_s|| cos(theta) g / ||g||, i.e. g_s minus its projection
    on g. The other steps take one forward/backward for g and update with
    g + alpha ||g|| / ||g_v|| g_v: the stored direction rescaled to the
    current gradient's norm (Algorithm 1). Norms are over all
    parameters together, as in the paper. Extra memory: g_v (one copy of
    the weights), plus a copy of g during SAM steps.
    """

    perturbations = ('global',)
    local_refusal = (
        'it stores a component of the first-pass gradient (g_v) for its '
        'later plain steps, which would differ between ranks'
    )

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        k: int = 5,
        alpha: float = 0.7,
        adaptive: bool = False,
        eta: float = 0.01,
    ):
        super().__init__(optimizer, rho, adaptive, eta)
        if int(k) != k or k < 1:
            raise ValueError(f'LookSAM k must be an integer >= 1, got {k}')
        if alpha < 0:
            raise ValueError(f'LookSAM alpha must be >= 0, got {alpha}')
        self.k = int(k)
        self.alpha = float(alpha)
        self.g_v: Optional[List[Optional[torch.Tensor]]] = None
        self._g: Optional[List[Optional[torch.Tensor]]] = None

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        if ctx.step % self.k == 0 or self.g_v is None:
            return self.sam_step(closure, ctx, before_update=self._store_g_v)
        return self.plain_step(closure, ctx, before_update=self._reuse_g_v)

    def epsilon(self, params, ctx) -> List[torch.Tensor]:
        # g at w, already unscaled, for the decomposition.
        self._g = [
            None if p.grad is None else p.grad.detach().clone()
            for p in self.params()
        ]
        return super().epsilon(params, ctx)

    @torch.no_grad()
    def _store_g_v(self, ctx: StepContext) -> None:
        """g_v = g_s - (<g, g_s> / ||g||^2) g, with g_s read from ``p.grad``
        before the update (before clipping)."""
        g, self._g = self._g, None
        inv_scale = 1.0 if ctx.scaler is None else 1.0 / ctx.scaler.get_scale()
        params = self.params()
        keep = [
            i
            for i, p in enumerate(params)
            if p.grad is not None and g[i] is not None
        ]
        if not keep:
            return
        g_s = [params[i].grad.float() * inv_scale for i in keep]
        g_w = [g[i].float() for i in keep]
        dot = sum((a * b).sum() for a, b in zip(g_s, g_w, strict=True))
        sq = sum((b * b).sum() for b in g_w)
        coef = dot / sq.clamp_min(1e-24)  # ||g|| = 0: g_v = g_s
        g_v = [None] * len(params)
        for i, a, b in zip(keep, g_s, g_w, strict=True):
            g_v[i] = (a - coef * b).to(params[i].grad.dtype)
        self.g_v = g_v

    @torch.no_grad()
    def _reuse_g_v(self, ctx: StepContext) -> None:
        """grad <- g + alpha ||g|| / ||g_v|| g_v. The ratio carries
        an fp16 loss scale along, so scaled gradients stay scaled."""
        pairs = [
            (p.grad, v)
            for p, v in zip(self.params(), self.g_v, strict=True)
            if p.grad is not None and v is not None
        ]
        if not pairs:
            return
        grads, g_v = [a for a, _ in pairs], [b for _, b in pairs]
        g_norm = torch.linalg.vector_norm(
            torch.stack(torch._foreach_norm(grads))
        )
        v_norm = torch.linalg.vector_norm(
            torch.stack(torch._foreach_norm(g_v))
        )
        # A zero g_v (g_s parallel to g) adds nothing.
        ratio = self.alpha * g_norm / v_norm.clamp_min(1e-12)
        torch._foreach_add_(grads, torch._foreach_mul(g_v, ratio))

    def state_dict(self) -> dict:
        return {
            'num_steps': self.num_steps,
            'k': self.k,
            'g_v': None
            if self.g_v is None
            else [None if v is None else v.clone() for v in self.g_v],
        }

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])
        if int(state.get('k', self.k)) != self.k:
            warnings.warn(
                f"resuming LookSAM with k={self.k} (the config's), the "
                f'checkpoint was trained with k={state["k"]}'
            )
        g_v = state.get('g_v')
        params = self.params()
        if g_v is not None and len(g_v) != len(params):
            raise ValueError(
                f'the checkpoint stores g_v for {len(g_v)} parameters, the '
                f'optimizer has {len(params)}: not the same model'
            )
        self.g_v = (
            None
            if g_v is None
            else [
                None if v is None else v.to(p.device)
                for v, p in zip(g_v, params, strict=True)
            ]
        )

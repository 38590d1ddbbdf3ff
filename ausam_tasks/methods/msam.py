"""Momentum-SAM: perturb along the negative normalised momentum.

Becker, Altrock and Risse 2024, "Momentum-SAM: Sharpness Aware
Minimization without Computational Overhead" (arXiv:2401.12033).
"""

import contextlib

import torch

from ..perturb import perturbed
from ..step import Closure, Method, StepContext, StepResult

# Where each base optimizer keeps its momentum vector v, and the setting
# that must be > 0 for it to have one (AdamW is checked before Adam).
MOMENTUM_STATE = (
    (torch.optim.SGD, 'momentum_buffer', 'momentum'),
    (torch.optim.AdamW, 'exp_avg', 'betas'),
    (torch.optim.Adam, 'exp_avg', 'betas'),
)


class MSAM(Method):
    """MSAM (Becker et al. 2024, Algorithm 1) around SGD with momentum, Adam
    or AdamW: one forward/backward per step.

    With v_t the base optimizer's momentum (SGD's buffer, Adam's first
    moment), each step takes the gradient at the perturbed point

        w~_t = w_t - rho v_t / ||v_t||              (eps = -rho v/||v||)

    and lets the base optimizer update w_t with it (v_{t+1} = mu v_t + g,
    w_{t+1} = w_t - lr v_{t+1} for SGD). Before the first step v = 0 and
    eps = 0. BatchNorm statistics are updated by that one forward, as in
    a plain step.

    End of training: the authors keep the weights at the perturbed point
    w~ between steps and remove the last perturbation with
    ``move_back_from_momentumAscent()`` before evaluating and at the end
    of training. Here the perturbation is applied at the start of each
    step and removed (bit-exactly, from a copy) at its end: the gradients
    are the same, but between steps -- at validation, in checkpoints, at
    the end of training -- the model always holds the unperturbed w, so
    nothing can silently evaluate or save w~. ``perturbed()`` is the
    context that moves to w~ and back, for analysis. Weight decay is
    applied by the base optimizer at w (the authors' code adds it at w~;
    the difference is of order weight_decay * rho).

    Extra memory: a copy of the weights during the step (as SAM).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, rho: float = 3.0):
        super().__init__(optimizer)
        if rho < 0:
            raise ValueError(f'rho must be >= 0, got {rho}')
        self.rho = rho
        found = [
            (key, setting)
            for kind, key, setting in MOMENTUM_STATE
            if isinstance(optimizer, kind)
        ]
        if not found:
            raise ValueError(
                "MSAM perturbs along the base optimizer's momentum; "
                f'{type(optimizer).__name__} has none it knows. Use SGD '
                '(with momentum), Adam or AdamW, or a subclass of them.'
            )
        self._key, setting = found[0]
        for group in optimizer.param_groups:
            mu = group[setting] if setting == 'momentum' else group[setting][0]
            if not mu > 0:
                name = 'momentum' if setting == 'momentum' else 'betas[0]'
                raise ValueError(
                    f'MSAM needs momentum: the {type(optimizer).__name__} '
                    f'optimizer has {name}={mu}; set it > 0 (the paper uses '
                    '0.9)'
                )

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        with self.perturbed():
            losses, loss = self.pass_at(closure, ctx, where='at w - rho v/|v|')
        skipped = self.overflowed(ctx)
        self.apply(ctx)  # the gradient at w~, applied at w
        # The one loss there is, at w~; no SAM pass to log.
        return StepResult(
            losses=losses, loss_before=loss, skipped=skipped, sam=None
        )

    def perturbed(self):
        """Context: the model at w~ = w - rho v/||v|| inside, w after
        (bit-exact). Before the first step v = 0 and eps = 0."""
        params, bufs = [], []
        for p in self.params():
            if not p.requires_grad or not getattr(p, 'sam_perturb', True):
                continue
            v = self.optimizer.state.get(p, {}).get(self._key)
            if v is not None:
                params.append(p)
                bufs.append(v)
        if not bufs:
            return contextlib.nullcontext()
        with torch.no_grad():
            norm = torch.linalg.vector_norm(
                torch.stack(torch._foreach_norm(bufs))
            )
            eps = torch._foreach_mul(bufs, -self.rho / norm.clamp_min(1e-12))
        return perturbed(params, eps)

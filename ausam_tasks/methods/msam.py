"""Momentum-SAM: perturb along the negative normalised momentum.

Becker, Altrock and Risse 2024, "Momentum-SAM: Sharpness Aware
Minimization without Computational Overhead" (arXiv:2401.12033).
"""

from typing import List, Optional

import torch
from torch import nn

from ..sam import SAM, StepResult, backward, total_loss

# Where each base optimizer keeps its momentum vector v.
MOMENTUM_STATE = {
    'SGD': 'momentum_buffer',
    'Adam': 'exp_avg',
    'AdamW': 'exp_avg',
}


class MSAM(SAM):
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
        super().__init__(optimizer, rho)
        kind = type(optimizer).__name__
        key = MOMENTUM_STATE.get(kind)
        if key is None:
            raise ValueError(
                f"MSAM perturbs along the base optimizer's momentum; "
                f'{kind} has none it knows. Use one of '
                f'{sorted(MOMENTUM_STATE)}.'
            )
        for group in optimizer.param_groups:
            mu = group['momentum'] if kind == 'SGD' else group['betas'][0]
            if not mu > 0:
                raise ValueError(
                    f'MSAM needs momentum: the {kind} optimizer has '
                    f'{"momentum" if kind == "SGD" else "betas[0]"}={mu}; '
                    'set it > 0 (the paper uses 0.9)'
                )
        self._key = key

    def _perturbable(self) -> List[torch.Tensor]:
        return [
            p
            for group in self.optimizer.param_groups
            for p in group['params']
            if p.requires_grad and getattr(p, 'sam_perturb', True)
        ]

    @torch.no_grad()
    def perturb(self) -> None:
        """w <- w - rho v / ||v|| (Algorithm 1), keeping an exact copy
        of w for ``restore``."""
        if self._saved is not None:
            raise RuntimeError('MSAM.perturb: the weights are perturbed')
        params, bufs = [], []
        for p in self._perturbable():
            v = self.optimizer.state.get(p, {}).get(self._key)
            if v is not None:
                params.append(p)
                bufs.append(v)
        if not bufs:  # first step: v = 0, eps = 0
            self._saved = ([], [])
            return
        self._saved = (params, [p.detach().clone() for p in params])
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(bufs)))
        eps = torch._foreach_mul(bufs, -self.rho / norm.clamp_min(1e-12))
        torch._foreach_add_(params, eps)

    @torch.no_grad()
    def restore(self) -> None:
        """w~ -> w (bit-exact)."""
        if self._saved[0]:
            super().restore()
        self._saved = None

    def perturbed(self):
        """Context: the model at w~ = w - rho v/||v|| inside, w after."""
        return _Perturbed(self)

    def step(
        self,
        closure,
        model: Optional[nn.Module] = None,
        scaler=None,
        update=None,
    ) -> StepResult:
        update = update or self.optimizer.step
        step = self.num_steps
        self.num_steps += 1
        with self.perturbed():
            losses = closure(None)
            loss = total_loss(
                losses, step, 'at w - rho v/|v|', scaler is None, self.finite
            )
            backward(loss.mean(), scaler)
        update()  # the gradient at w~, applied at w
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss.detach()
        result = StepResult(
            losses={k: v.detach() for k, v in losses.items()},
            loss_before=loss,  # the one loss there is, at w~
            skipped=not bool(torch.isfinite(loss).all()),
        )
        return self._checked(step, result)


class _Perturbed:
    def __init__(self, core: MSAM):
        self.core = core

    def __enter__(self):
        self.core.perturb()

    def __exit__(self, *exc):
        self.core.restore()
        return False

"""G-RST (Zhao, Zhang & Hu 2022, "Randomized Sharpness-Aware Training for
Boosting Computational Efficiency in Deep Learning"): RST whose two-pass
step is the gradient-norm-penalty (GNP) step of Zhao et al. 2022,
"Penalizing Gradient Norm for Efficiently Improving Generalization in Deep
Learning" (arXiv 2202.03599)."""

from typing import List, Optional

import torch

from ..step import Closure, StepContext, StepResult
from .rst import RST


class GRST(RST):
    """Each step, with probability p(t) (RST's schedules), a GNP step

        g = (1 - alpha) g1' + alpha grad L(w + rho g1 / ||g1||)

    with g1 the gradient at w, otherwise a plain step of the base
    optimizer. ``norm_g1=True`` mixes g1' = g1 / ||g1||, as the authors'
    code does by default (``gnp.norm_perturbations``); ``False`` mixes g1
    itself, the formula of the GNP paper. ``rho`` is the paper's r.
    Defaults r = 0.1, alpha = 0.8 are the authors' ResNet CIFAR recipe
    (``recipes/resnet-cifar.sh``); p = 0.5 is RST's. Norms are over all
    perturbed parameters together; a parameter marked ``sam_perturb=False``
    steps with the gradient at w + eps alone. Extra memory: g1 (one copy
    of the weights) during a GNP step.
    """

    perturbations = ('global',)
    local_refusal = (
        'its update mixes in the first-pass gradient g1, which would '
        'differ between ranks'
    )

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.1,
        alpha: float = 0.8,
        norm_g1: bool = True,
        p_start: float = 0.5,
        p_end: Optional[float] = None,
        schedule: str = 'constant',
        seed: int = 0,
    ):
        if not rho > 0:
            raise ValueError(
                f'G-RST rho (the GNP radius r) must be > 0, got {rho}'
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'G-RST alpha must be in [0, 1], got {alpha}')
        super().__init__(optimizer, rho, p_start, p_end, schedule, seed)
        self.alpha, self.norm_g1 = float(alpha), bool(norm_g1)
        self._g1: Optional[List[torch.Tensor]] = None
        self._mixed: List[torch.Tensor] = []  # the parameters g1 is of

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        if self.draw(ctx.progress):
            return self.sam_step(closure, ctx, before_update=self._mix)
        return self.plain_step(closure, ctx)

    def epsilon(self, params, ctx) -> List[torch.Tensor]:
        eps = super().epsilon(params, ctx)  # rho g1 / ||g1||, unscaled
        if self.norm_g1:  # g1 / ||g1|| is eps / rho: no second norm
            g1 = torch._foreach_div(eps, self.rho)
        else:
            g1 = [p.grad.detach().clone() for p in params]
        self._g1, self._mixed = g1, params
        return eps

    @torch.no_grad()
    def _mix(self, ctx: StepContext) -> None:
        """grad <- alpha grad + (1 - alpha) g1', in the scaler's units."""
        g1, self._g1 = self._g1, None
        scale = 1.0 if ctx.scaler is None else ctx.scaler.get_scale()
        pairs = [(p.grad, g) for p, g in zip(self._mixed, g1, strict=True)]
        grads = [a for a, _ in pairs if a is not None]
        g1 = [b for a, b in pairs if a is not None]
        torch._foreach_mul_(grads, self.alpha)
        torch._foreach_add_(grads, g1, alpha=(1.0 - self.alpha) * scale)

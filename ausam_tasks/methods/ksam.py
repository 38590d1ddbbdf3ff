"""K-SAM (Ni et al. 2022, "K-SAM: Sharpness-Aware Minimization at the Speed
of SGD"), the efficient way: rank without autograd, train on the top n."""

import torch

from ..perturb import frozen_stats_closure
from ..sam import SAM
from ..selection import select_topk_loss, subset_size
from ..step import Closure, Method, StepContext, StepResult


def ranked_subset(method: Method, closure: Closure, ctx, alpha: float):
    """(positions of the top round(alpha K) losses at w, the closure with
    running statistics frozen). The ranking forward runs without autograd
    in train mode and is the step's one running-statistics update, as the
    whole-batch forward of Ni et al. (2022) is; the SAM passes on the
    subset then leave the statistics alone."""
    with torch.no_grad():
        ranked = method.loss(closure(None), ctx, 'at w (ranking pass)')
    pos = select_topk_loss(ranked, subset_size(len(ranked), alpha))
    return pos, frozen_stats_closure(closure, ctx.model)


class KSAM(SAM):
    """SAM on the n = round(alpha K) samples of the batch with the highest
    loss at w: both passes (ascent, Eq. 2, and descent, Eq. 3) use the top
    n only (``ranked_subset``). Passes per step: a no-grad forward of K,
    then two forward/backward passes of n. No extra memory beyond SAM's.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        alpha: float = 0.5,
        adaptive: bool = False,
        eta: float = 0.01,
    ):
        super().__init__(optimizer, rho, adaptive, eta)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f'K-SAM alpha must be in (0, 1], got {alpha}')
        self.alpha = float(alpha)

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        if self.alpha >= 1.0:  # every sample: plain SAM, nothing to rank
            return self.sam_step(closure, ctx)
        pos, closure = ranked_subset(self, closure, ctx, self.alpha)
        return self.sam_step(closure, ctx, pos)

"""K-SAM (Ni et al. 2022, "K-SAM: Sharpness-Aware Minimization at the Speed
of SGD"), the efficient way: rank without autograd, train on the top n."""

import torch

from ..sam import SAM
from ..step import Closure, StepContext, StepResult


class KSAM(SAM):
    """SAM on the n = round(alpha K) samples of the batch with the highest
    loss at w: both passes (ascent, Eq. 2, and descent, Eq. 3) use the top
    n only (``Method.top_loss_subset``). Passes per step: a no-grad
    forward of K, then two forward/backward passes of n. No extra memory
    beyond SAM's.
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
        pos, closure = self.top_loss_subset(closure, ctx, self.alpha)
        return self.sam_step(closure, ctx, pos)

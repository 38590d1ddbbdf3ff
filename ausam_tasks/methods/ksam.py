"""K-SAM (Ni et al. 2022, "K-SAM: Sharpness-Aware Minimization at the Speed
of SGD"), the efficient way: rank without autograd, train on the top n."""

from typing import Callable, Optional

import torch
from torch import nn

from ..sam import (
    SAM,
    Closure,
    StepResult,
    frozen_stats_closure,
    rank_by_loss,
)
from ..selection import select_topk_loss, subset_size


class KSAM(SAM):
    """SAM on the n = round(alpha K) samples of the batch with the highest
    loss at w: both passes (ascent, Eq. 2, and descent, Eq. 3) use the top
    n only.

    The ranking losses come from one forward of the whole batch without
    autograd, so no graph of the K samples is kept or backpropagated.
    BatchNorm: that whole-batch forward updates the running statistics (the
    paper's only whole-batch forward); both SAM passes on the subset run
    with them frozen (and QAT observers too, through ``second_pass``), so
    each step updates them exactly once.
    Passes per step: a no-grad forward of K, then two forward/backward
    passes of n. No extra memory beyond SAM's.
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

    def select(self, losses: torch.Tensor) -> torch.Tensor:
        """Batch positions of the n highest losses, in batch order."""
        return select_topk_loss(losses, subset_size(len(losses), self.alpha))

    def step(
        self,
        closure: Closure,
        model: Optional[nn.Module] = None,
        scaler=None,
        update: Optional[Callable[[], None]] = None,
    ) -> StepResult:
        if self.alpha >= 1.0:  # every sample: plain SAM, nothing to rank
            return self.two_passes(closure, None, model, scaler, update)
        ranked = rank_by_loss(
            closure, self.num_steps, scaler is None, self.finite
        )
        pos = self.select(ranked)
        return self.two_passes(
            frozen_stats_closure(closure, model), pos, model, scaler, update
        )

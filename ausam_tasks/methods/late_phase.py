"""Late-phase SAM: plain steps of the base optimizer first, SAM from a
given epoch on (Andriushchenko & Flammarion 2022, "Towards Understanding
Sharpness-Aware Minimization", ICML, show that SAM applied only at the end
of training recovers most of its gain; Zhou et al. 2025, "Sharpness-Aware
Minimization Efficiently Selects Flatter Minima Late in Training")."""

import torch

from ..sam import SAM
from ..step import Closure, StepContext, StepResult


class LatePhaseSAM(SAM):
    """One-pass base-optimizer steps while epoch < ``start_epoch``, SAM
    steps (Foret et al. 2021, Eq. 2-3) from then on. ``start_epoch=0`` is
    plain SAM. Passes per step: 1 before, 2 after; no extra memory."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        start_epoch: float = 0,
        adaptive: bool = False,
        eta: float = 0.01,
    ):
        super().__init__(optimizer, rho, adaptive, eta)
        if start_epoch < 0:
            raise ValueError(
                f'late-phase SAM start_epoch must be >= 0, got {start_epoch}'
            )
        self.start_epoch = start_epoch

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        if ctx.epoch < self.start_epoch:
            return self.plain_step(closure, ctx)
        return self.sam_step(closure, ctx)

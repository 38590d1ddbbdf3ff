"""RST (Zhao, Zhang & Hu 2022, "Randomized Sharpness-Aware Training for
Boosting Computational Efficiency in Deep Learning")."""

from typing import Optional

import torch

from ..sam import SAM
from ..step import Closure, StepContext, StepResult

SCHEDULES = ('constant', 'linear')


class RST(SAM):
    """Randomized sharpness-aware training: at each step a Bernoulli trial
    with probability p(t) picks a SAM step (two passes), otherwise a plain
    step of the base optimizer (one pass). p follows a scheduling function
    of the training progress t / T in [0, 1]: 'constant' p = p_start, or
    'linear' p = p_start + (p_end - p_start) t / T. Expected passes per
    step: 1 + mean p. No extra memory.

    The draw of step t uses a generator seeded from (seed, t) only, so it
    resumes from the step counter and agrees across data-parallel ranks.
    G-RST is ``methods.grst``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        p_start: float = 0.5,
        p_end: Optional[float] = None,
        schedule: str = 'constant',
        seed: int = 0,
        adaptive: bool = False,
        eta: float = 0.01,
    ):
        super().__init__(optimizer, rho, adaptive, eta)
        if schedule not in SCHEDULES:
            raise ValueError(
                f'unknown RST schedule {schedule!r}; choose one of {SCHEDULES}'
            )
        if p_end is None:
            p_end = p_start
        for name, p in (('p_start', p_start), ('p_end', p_end)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(
                    f'RST {name} is a probability, must be in [0, 1], got {p}'
                )
        if schedule == 'constant' and p_end != p_start:
            raise ValueError(
                f"RST schedule 'constant' uses p_start only, got p_end="
                f"{p_end} != p_start={p_start}; set schedule='linear' to "
                'ramp from p_start to p_end'
            )
        self.p_start, self.p_end = float(p_start), float(p_end)
        self.schedule = schedule
        self.seed = int(seed)

    def probability(self, progress: float) -> float:
        """p(t) at progress t / T (clamped to [0, 1])."""
        t = min(max(float(progress), 0.0), 1.0)
        if self.schedule == 'constant':
            return self.p_start
        return self.p_start + (self.p_end - self.p_start) * t

    def draw(self, progress: float) -> bool:
        """The Bernoulli trial of the current step: True means SAM."""
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.num_steps)
        return bool(
            torch.rand(1, generator=g).item() < self.probability(progress)
        )

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        if self.draw(ctx.progress):
            return self.sam_step(closure, ctx)
        return self.plain_step(closure, ctx)

    def state_dict(self) -> dict:
        return {'num_steps': self.num_steps, 'seed': self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])
        # The checkpoint's seed continues the same stream of draws.
        self.seed = int(state.get('seed', self.seed))

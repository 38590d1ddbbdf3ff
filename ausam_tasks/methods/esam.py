"""ESAM: SAM with stochastic weight perturbation and sharpness-sensitive
data selection.

Du et al. 2022a, "Efficient Sharpness-aware Minimization for Improved
Training of Neural Networks" (ICLR 2022).
"""

from typing import List

import torch

from ..sam import SAM
from ..selection import subset_size
from ..step import Closure, StepContext, StepResult


def swp_masks(
    params: List[torch.Tensor], beta: float, seed: int, step: int
) -> List[torch.Tensor]:
    """The SWP masks m_i ~ Bernoulli(beta), one per weight (Sec. 3.1),
    as 0/1 tensors like each parameter. They are a function of (seed,
    step) only, so data-parallel ranks draw the same mask and a resumed
    run continues the same stream."""
    gens = {}
    masks = []
    for p in params:
        g = gens.get(p.device)
        if g is None:
            g = gens[p.device] = torch.Generator(device=p.device)
            g.manual_seed(int(seed) * 1_000_003 + int(step))
        u = torch.rand(p.shape, generator=g, device=p.device)
        masks.append((u < beta).to(p.dtype))
    return masks


class ESAM(SAM):
    """ESAM (Du et al. 2022a) around any torch optimizer.

    Each step:

    1. forward/backward the whole batch at w, keeping l_i(w);
    2. SWP (Sec. 3.1): eps = (rho / beta) m * g / ||g||, m_i ~
       Bernoulli(beta) per weight: a random beta of the weights is
       perturbed, scaled by 1/beta so that E[eps] is SAM's eps (Eq. 2);
    3. SDS (Sec. 3.2): a forward without autograd of the whole batch at
       w + eps gives every l_i(w + eps); B+ is the round(gamma K) samples
       whose loss rose most, l_i(w + eps) - l_i(w);
    4. forward/backward B+ only at w + eps (BatchNorm statistics frozen),
       restore w, and update with that gradient (Eq. 3 on B+).

    beta = gamma = 1 is SAM exactly. The defaults beta = 0.6, gamma = 0.5
    are the authors' ResNet-18 CIFAR setting. The authors' code draws one
    Bernoulli per parameter tensor; this follows the paper's per-weight
    mask.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        beta: float = 0.6,
        gamma: float = 0.5,
        seed: int = 0,
        adaptive: bool = False,
        eta: float = 0.01,
    ):
        super().__init__(optimizer, rho, adaptive, eta)
        if not 0.0 < beta <= 1.0:
            raise ValueError(
                f'beta must be in (0, 1] (the probability that SWP '
                f'perturbs a weight; 1 perturbs all), got {beta}'
            )
        if not 0.0 < gamma <= 1.0:
            raise ValueError(
                f'gamma must be in (0, 1] (the fraction of the batch SDS '
                f'keeps for the second backward; 1 keeps all), got {gamma}'
            )
        self.beta, self.gamma, self.seed = beta, gamma, int(seed)

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        return self.sam_step(closure, ctx)

    def epsilon(self, params, ctx) -> List[torch.Tensor]:
        eps = super().epsilon(params, ctx)
        if self.beta < 1.0:  # SWP (Sec. 3.1)
            masks = swp_masks(params, self.beta, self.seed, ctx.step)
            torch._foreach_mul_(eps, masks)
            torch._foreach_mul_(eps, 1.0 / self.beta)
        return eps

    def second_pass(self, closure, ctx, positions, loss_before):
        """SDS (Sec. 3.2): rank the whole batch by its loss rise at w + eps
        without autograd, then forward/backward the top n only."""
        k = len(loss_before)
        n = subset_size(k, self.gamma)
        if n == k:
            return super().second_pass(closure, ctx, None, loss_before)
        with torch.no_grad():
            after = self.loss(closure(None), ctx, 'at w + eps')
        rise = after.float() - loss_before.float()
        pos = torch.topk(rise, n).indices.sort().values
        super().second_pass(closure, ctx, pos, loss_before)
        return after.detach(), pos

    def state_dict(self) -> dict:
        return {'num_steps': self.num_steps, 'seed': self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])
        self.seed = int(state.get('seed', self.seed))

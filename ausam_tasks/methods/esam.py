"""ESAM: SAM with stochastic weight perturbation and sharpness-sensitive
data selection.

Du et al. 2022a, "Efficient Sharpness-aware Minimization for Improved
Training of Neural Networks" (ICLR 2022).
"""

from typing import List, Optional

import torch
from torch import nn

from ..sam import SAM, StepResult, backward, perturbation, second_pass
from ..sam import total_loss as _total
from ..selection import subset_size


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

    @torch.no_grad()
    def perturb(self, step: Optional[int] = None) -> None:
        """w <- w + eps with the SWP mask of ``step`` (exact copy of w
        kept for ``restore``)."""
        params = [
            p
            for p in self._params_with_grad()
            if getattr(p, 'sam_perturb', True)
        ]
        eps = perturbation(params, self.rho, self.adaptive, self.eta)
        if self.beta < 1.0:
            step = self.num_steps if step is None else step
            torch._foreach_mul_(
                eps, swp_masks(params, self.beta, self.seed, step)
            )
            torch._foreach_mul_(eps, 1.0 / self.beta)
        self._saved = (params, [p.detach().clone() for p in params])
        torch._foreach_add_(params, eps)

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
        finite = scaler is None  # fp16: non-finite means overflow
        losses1 = closure(None)
        l1 = _total(losses1, step, 'at w', finite, self.finite)
        backward(l1.mean(), scaler)
        l1 = l1.detach()
        first = {k: v.detach() for k, v in losses1.items()}
        if scaler is not None and not _unscale(
            self._params_with_grad(), scaler
        ):
            update()  # the scaler sees the overflow: skip, back off
            self.optimizer.zero_grad(set_to_none=True)
            return StepResult(losses=first, loss_before=l1, skipped=True)
        self.perturb(step)  # SWP (Sec. 3.1)
        self.optimizer.zero_grad(set_to_none=True)
        # SDS (Sec. 3.2): rank the whole batch by its loss rise at w + eps
        # without autograd, then forward/backward the top n only.
        k = len(l1)
        n = subset_size(k, self.gamma)
        try:
            with second_pass(model):
                if n < k:
                    with torch.no_grad():
                        l2_all = _total(
                            closure(None),
                            step,
                            'at w + eps',
                            finite,
                            self.finite,
                        )
                    rise = l2_all.float() - l1.float()
                    pos = torch.topk(rise, n).indices.sort().values
                    l2 = _total(
                        closure(pos), step, 'at w + eps', finite, self.finite
                    )
                else:
                    pos = None
                    l2 = _total(
                        closure(None), step, 'at w + eps', finite, self.finite
                    )
                    l2_all = l2.detach()
                backward(l2.mean(), scaler)
        finally:
            self.restore()
        update()
        self.optimizer.zero_grad(set_to_none=True)
        result = StepResult(
            losses=first,
            loss_before=l1,
            loss_after=l2_all,
            positions=pos,
            skipped=not bool(torch.isfinite(l2.detach()).all()),
        )
        return self._checked(step, result)

    def state_dict(self) -> dict:
        return {'num_steps': self.num_steps, 'seed': self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])
        self.seed = int(state.get('seed', self.seed))


def _unscale(params: List[torch.Tensor], scaler) -> bool:
    """Unscale the fp16 gradients in place before the norm of Eq. 2;
    False on an overflow (as SAM.two_passes does)."""
    grads = [p.grad for p in params]
    if not grads:
        return True
    torch._foreach_mul_(grads, 1.0 / scaler.get_scale())
    norms = torch._foreach_norm(grads)
    return bool(torch.isfinite(torch.stack(norms)).all())

"""SAM and AUSAM in plain PyTorch (no mmengine).

SAM (Foret et al. 2021) minimises max_{||eps|| <= rho} L(w + eps) (Eq. 1) with
one ascent step eps = rho * g / ||g|| (Eq. 2) and the gradient taken at
w + eps (Eq. 3). AUSAM (Deng et al.) runs both passes on a subset of the
mini-batch drawn by each sample's ADLP score (Eq. 6-8).
"""

import dataclasses
import warnings
from typing import List, Optional

import torch
import torch.distributed as dist

from .exchange import distributed, gather_scores
from .perturb import perturbation
from .scores import ScoreTable
from .selection import (
    SELECTORS,
    s_max_at,
    select_subset,
    select_topk_loss,
    select_uniform,
    selection_probs,
    subset_size,
)
from .step import Closure, Method, StepContext, StepResult


class SAM(Method):
    """Sharpness-aware minimisation around any torch optimizer: pass 1 at
    w, w <- w + eps (Eq. 2), pass 2 at w + eps without running-statistic
    updates, restore w, update with the gradient at w + eps (Eq. 3).
    ``adaptive=True`` is ASAM (Kwon et al. 2021)."""

    infobatch_passes = ('first', 'second')
    perturbations = ('global', 'local')

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
    ):
        super().__init__(optimizer)
        if rho < 0:
            raise ValueError(f'rho must be >= 0, got {rho}')
        self.rho, self.adaptive, self.eta = rho, adaptive, eta

    def epsilon(self, params, ctx) -> List[torch.Tensor]:
        return perturbation(params, self.rho, self.adaptive, self.eta)

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        return self.sam_step(closure, ctx)


class AUSAM(SAM):
    """SAM on an importance-sampled subset of each mini-batch.

    Each step draws n = round(alpha K) of the K samples with probability
    from their ADLP scores (Eq. 7-8), runs both SAM passes on them only and
    folds DLP_i = |l_i(w + eps) - l_i(w)| into the score table (Eq. 5-6).
    During the first ``init_epochs`` every sample is used (alpha ignored) so
    that each gets a real score. ``warmup_by='epoch'`` ramps s_max and
    counts ``init_epochs`` by whole epochs (as the authors), ``'iter'``
    within them. ``selector='topk_loss'`` is K-SAM's rule after
    ``init_epochs`` (``methods.ksam``). ``score_average='last'`` scores a
    sample by its latest DLP only. ``importance_weights=True`` weighs each
    selected sample's loss by 1 / (K p_i) in both passes, p_i its selection
    probability (Eq. 7): the importance-sampling estimate of the batch
    gradient that Theorem 4 is about, unbiased for draws with replacement;
    the subset is drawn without replacement, so it is approximate (the
    paper's subset mean is unweighted).
    """

    needs = frozenset({'sample_idx'})

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        alpha: float = 0.5,
        s_min: float = 0.1,
        s_max: float = 0.5,
        warmup_epochs: float = 30,
        warmup_by: str = 'epoch',
        init_epochs: int = 1,
        selector: str = 'adlp',
        score_average: str = 'mean',
        ema_momentum: float = 0.1,
        num_samples: Optional[int] = None,
        seed: int = 0,
        adaptive: bool = False,
        eta: float = 0.01,
        importance_weights: bool = False,
    ):
        super().__init__(optimizer, rho, adaptive, eta)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f'alpha must be in (0, 1], got {alpha}')
        if s_min <= 0 or s_min > s_max:
            raise ValueError(
                f'need 0 < s_min <= s_max, got s_min={s_min}, s_max={s_max}'
            )
        if selector not in SELECTORS:
            raise ValueError(
                f'unknown selector {selector!r}; choose one of {SELECTORS}'
            )
        if init_epochs < 0 or warmup_epochs < 0:
            raise ValueError('init_epochs and warmup_epochs must be >= 0')
        if warmup_by not in ('epoch', 'iter'):
            raise ValueError(
                f"warmup_by must be 'epoch' or 'iter', got {warmup_by!r}"
            )
        if importance_weights and selector == 'topk_loss':
            raise ValueError(
                "importance_weights needs a random selector ('adlp' or "
                "'uniform'): selector='topk_loss' has no selection "
                'probabilities'
            )
        self.importance_weights = bool(importance_weights)
        self.alpha = alpha
        self.s_min, self.s_max = s_min, s_max
        self.warmup_epochs, self.warmup_by = warmup_epochs, warmup_by
        self.init_epochs = init_epochs
        self.selector = selector
        self.seed = int(seed)
        self.table = ScoreTable(num_samples, score_average, ema_momentum)
        self._gather_width: Optional[int] = None
        self._warned_tiny_subset = False

    def _generator(self, device='cpu') -> torch.Generator:
        # A fresh stream per (seed, step, rank) on the training device:
        # resuming needs only the step counter (on either device type, each
        # with its own stream), and data-parallel ranks draw independently.
        rank = dist.get_rank() if distributed() else 0
        g = torch.Generator(device=device)
        g.manual_seed((self.seed * 1_000_003 + self.num_steps) * 4099 + rank)
        return g

    def subsetting(self, epoch: float) -> bool:
        """Whether this step trains on a subset (after the scoring epochs)."""
        return epoch >= self.init_epochs and self.alpha < 1.0

    def select(
        self,
        sample_idx: torch.Tensor,
        epoch: float,
        losses: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Positions of the batch to train on at this step, on the device
        of ``sample_idx``. Host indices are range-checked and moved to the
        score table's device; device indices count as checked."""
        if torch.as_tensor(sample_idx).device.type == 'cpu':
            sample_idx = self.table._check(sample_idx)
        k, device = len(sample_idx), sample_idx.device
        if not self.subsetting(epoch):
            return torch.arange(k, device=device)
        n = subset_size(k, self.alpha)
        if self.selector == 'uniform':
            return select_uniform(k, n, self._generator(device))
        if self.selector == 'topk_loss':
            return select_topk_loss(losses, n)
        s_max = s_max_at(epoch, self.s_min, self.s_max, self.warmup_epochs)
        return select_subset(
            self.table.lookup(sample_idx),
            n,
            self.s_min,
            s_max,
            self._generator(device),
        )

    def importance(self, idx: torch.Tensor, epoch: float) -> torch.Tensor:
        """1 / (K p_i) for each row of the batch, p_i its probability in
        the draw of ``select`` (Eq. 7; 1 for a uniform draw)."""
        k = len(idx)
        if self.selector == 'uniform':
            return torch.ones(k, dtype=torch.float64, device=idx.device)
        s_max = s_max_at(epoch, self.s_min, self.s_max, self.warmup_epochs)
        scores = self.table.lookup(idx).double()
        return 1.0 / (k * selection_probs(scores, self.s_min, s_max))

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        # The table lives on the training device; the indices are checked on
        # the host (they come from there), before any work on a bad one.
        self.table.to(self.device())
        idx = self.table._check(ctx.sample_idx)
        self._warn_tiny_subset(len(idx))
        epoch = (
            ctx.epoch if self.warmup_by == 'iter' else float(int(ctx.epoch))
        )
        if self.selector == 'topk_loss' and self.subsetting(epoch):
            pos, closure = self.top_loss_subset(closure, ctx, self.alpha)
        else:
            pos = self.select(idx, epoch)
        if self.importance_weights and self.subsetting(epoch):
            w = self.importance(idx, epoch)
            ctx = dataclasses.replace(
                ctx,
                weights={
                    s: w * ctx.weights[s] if s in ctx.weights else w
                    for s in ('first', 'second')
                },
            )
        result = self.sam_step(closure, ctx, pos)
        if not result.skipped:
            result.dlp = (
                result.loss_after - result.loss_before
            ).abs()  # Eq. 5
            result.logs['dlp_mean'] = result.dlp.mean()
            all_idx, dlp, weight = self._gather(idx[pos], result.dlp, len(idx))
            # Indices from other ranks were checked there; a growing table
            # must still see them to grow alike on every rank.
            checked = self.table.fixed_size or weight is None
            self.table.update(all_idx, dlp, weight, checked=checked)  # Eq. 6
        return result

    def _warn_tiny_subset(self, batch_size: int) -> None:
        if self._warned_tiny_subset:
            return
        # The batch size is known at the first step: warn there, once.
        n = subset_size(batch_size, self.alpha)
        if n < 2:
            warnings.warn(
                f'AUSAM: alpha={self.alpha} keeps {n} of the {batch_size} '
                'samples of a batch: a 1-sample subset gives a noisy step '
                '(and BatchNorm cannot train on it); raise alpha or the '
                'batch size'
            )
        self._warned_tiny_subset = True

    def _gather(self, idx, dlp, batch_size: int) -> tuple:
        if not distributed():
            return idx, dlp, None
        if self._gather_width is None:
            # Once per run (a host read): the largest batch of any rank,
            # which every later subset fits in.
            k = torch.tensor([batch_size], device=idx.device)
            dist.all_reduce(k, op=dist.ReduceOp.MAX)
            self._gather_width = int(k.item())
        return gather_scores(idx, dlp, self._gather_width)

    def fix_size(self, num_samples: int) -> None:
        """Size the score table to the dataset; a no-op when it is."""
        if not self.table.fixed_size:
            self.table.fix_size(num_samples)

    def state_dict(self) -> dict:
        return {
            'num_steps': self.num_steps,
            'seed': self.seed,
            'scores': self.table.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])
        if 'scores' not in state:
            warnings.warn(
                'the checkpoint holds plain SAM state: AUSAM '
                'starts with an empty score table'
            )
            return
        if int(state['seed']) != self.seed:
            warnings.warn(
                f"resuming with the checkpoint's selection seed "
                f'{state["seed"]} instead of {self.seed}, so the '
                'draws continue the same stream'
            )
        self.seed = int(state['seed'])
        self.table.load_state_dict(state['scores'])

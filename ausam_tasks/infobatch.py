"""InfoBatch (Qin et al., ICLR 2024) in plain PyTorch: which samples an
epoch trains on, and the loss weight of each.

Each sample's score is its latest training loss. At the start of an epoch
the well-learned samples are those scoring below the mean of the scored
ones; a random ``prune_ratio`` of them sits the epoch out and the kept ones
weigh n_well / n_kept (1 / (1 - prune_ratio) up to rounding), so that the
expected epoch gradient equals the full-data one. From epoch
ceil(delta * num_epochs) on nothing is pruned and every weight is 1
(annealing). Never-scored samples are never well-learned and stay out of
the mean (the reference code starts every score at 3 to the same end).

The draw of an epoch is a function of (seed, epoch) and the scores, so
data-parallel ranks with the same scores draw the same kept set, and a
resumed run draws what the uninterrupted one drew.
"""

import math
from typing import Optional, Tuple

import numpy as np
import torch


class InfoBatch:
    """The score table and the per-epoch plan of InfoBatch.

    Args:
        num_samples: dataset size.
        prune_ratio: the fraction of the well-learned samples left out of
            each pruned epoch, in [0, 1).
        delta: pruning stops from epoch ceil(delta * num_epochs), in (0, 1].
        num_epochs: the training length (may be set later, before
            ``plan``).
        seed: the seed of the draws.
    """

    def __init__(
        self,
        num_samples: int,
        prune_ratio: float = 0.5,
        delta: float = 0.875,
        num_epochs: Optional[int] = None,
        seed: int = 0,
    ):
        check_settings(prune_ratio, delta)
        if num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        self.prune_ratio, self.delta = float(prune_ratio), float(delta)
        self.num_epochs = num_epochs
        self.seed = int(seed)
        # float64, NaN: never scored.
        self.scores = torch.full((num_samples,), math.nan, dtype=torch.float64)
        self.weights = torch.ones(num_samples, dtype=torch.float64)
        self.planned_epoch: Optional[int] = None
        self.kept = torch.arange(num_samples)  # the planned epoch's order

    def __len__(self) -> int:
        return self.scores.numel()

    def pruning(self, epoch: int) -> bool:
        """Whether ``epoch`` prunes (before the annealing epochs)."""
        if self.num_epochs is None:
            raise RuntimeError(
                'InfoBatch needs num_epochs (the training length) to know '
                'when annealing starts'
            )
        stop = math.ceil(self.delta * self.num_epochs)
        return self.prune_ratio > 0 and epoch < stop

    def generator(self, epoch: int) -> torch.Generator:
        seed = np.random.SeedSequence([self.seed, epoch, 0x1B])
        return torch.Generator().manual_seed(int(seed.generate_state(1)[0]))

    def well_learned(self) -> torch.Tensor:
        """Mask of the samples scoring below the mean of the scored ones."""
        seen = ~torch.isnan(self.scores)
        if not seen.any():
            return torch.zeros_like(seen)
        mean = self.scores[seen].mean()
        return seen & (self.scores < mean)

    def plan(self, epoch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(the kept dataset indices in this epoch's shuffled order, the
        per-sample loss weights), drawn once per epoch and kept."""
        if self.planned_epoch == epoch:
            return self.kept, self.weights
        g = self.generator(epoch)
        self.weights = torch.ones(len(self), dtype=torch.float64)
        # Nothing scored yet (the first epoch): nothing to prune.
        if not torch.isnan(self.scores).all() and self.pruning(epoch):
            mask = self.well_learned()
            well = torch.nonzero(mask).flatten()
            n_keep = int((1.0 - self.prune_ratio) * len(well))
            if n_keep == 0:  # nothing left to reweigh: prune none
                mask = torch.zeros_like(mask)
                well = well[:0]
            chosen = well[torch.randperm(len(well), generator=g)[:n_keep]]
            if n_keep:
                # Exactly unbiased: each well-learned sample is kept with
                # probability n_keep / n_well.
                self.weights[chosen] = len(well) / n_keep
            kept = torch.cat([torch.nonzero(~mask).flatten(), chosen])
        else:
            kept = torch.arange(len(self))
        self.kept = kept[torch.randperm(len(kept), generator=g)]
        self.planned_epoch = epoch
        return self.kept, self.weights

    def update(self, idx: torch.Tensor, losses: torch.Tensor) -> None:
        """The latest loss of each index becomes its score."""
        idx = torch.as_tensor(idx).flatten().cpu().long()
        losses = torch.as_tensor(losses).detach().flatten().cpu().double()
        if idx.numel() != losses.numel():
            raise ValueError(
                f'{idx.numel()} indices but {losses.numel()} losses'
            )
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(
                f'InfoBatch: sample index out of range [0, {len(self)})'
            )
        self.scores[idx] = losses

    def state_dict(self) -> dict:
        return {
            'scores': self.scores.clone(),
            'weights': self.weights.clone(),
            'kept': self.kept.clone(),
            'planned_epoch': self.planned_epoch,
            'seed': self.seed,
        }

    def load_state_dict(self, state: dict) -> None:
        if state['scores'].numel() != len(self):
            raise ValueError(
                f'InfoBatch state for {state["scores"].numel()} samples, '
                f'the dataset has {len(self)}'
            )
        self.scores = state['scores'].clone().double()
        self.weights = state['weights'].clone().double()
        self.kept = state['kept'].clone().long()
        self.planned_epoch = state['planned_epoch']
        self.seed = int(state['seed'])


def check_settings(prune_ratio, delta) -> None:
    if not 0.0 <= prune_ratio < 1.0:
        raise ValueError(
            f'InfoBatch prune_ratio must be in [0, 1), got {prune_ratio}'
        )
    if not 0.0 < delta <= 1.0:
        raise ValueError(f'InfoBatch delta must be in (0, 1], got {delta}')

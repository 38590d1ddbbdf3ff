"""Choosing the subset of a mini-batch that SAM trains on (Eq. 7-8)."""

from typing import Optional

import torch

SELECTORS = ('adlp', 'uniform', 'topk_loss')


def s_max_at(
    epoch: float, s_min: float, s_max: float, warmup_epochs: float
) -> float:
    """Upper normalisation bound during warm-up: linear from s_min to s_max
    over ``warmup_epochs`` (the paper's E_start)."""
    if warmup_epochs <= 0:
        return s_max
    t = min(max(epoch / warmup_epochs, 0.0), 1.0)
    return s_min + t * (s_max - s_min)


def fill_unscored(scores: torch.Tensor) -> torch.Tensor:
    """Never-scored samples (NaN) take the batch's highest score, so they are
    not starved. A batch with no scored sample becomes all-equal (uniform)."""
    nan = torch.isnan(scores)
    if not nan.any():
        return scores
    if nan.all():
        return torch.ones_like(scores)
    return torch.where(nan, scores[~nan].max(), scores)


def normalize_scores(
    scores: torch.Tensor, s_min: float, s_max: float
) -> torch.Tensor:
    """Eq. 8: min-max normalise the batch's scores into [s_min, s_max].

    All-equal scores (max == min) map to s_max everywhere, i.e. a uniform
    draw, never a division by zero.
    """
    lo, hi = scores.min(), scores.max()
    span = hi - lo
    if span <= 0:
        return torch.full_like(scores, s_max)
    return s_min + (scores - lo) / span * (s_max - s_min)


def selection_probs(
    scores: torch.Tensor, s_min: float, s_max: float
) -> torch.Tensor:
    """Eq. 7 on the normalised scores of Eq. 8."""
    g = normalize_scores(fill_unscored(scores), s_min, s_max)
    return g / g.sum()


def subset_size(batch_size: int, alpha: float) -> int:
    """n = round(alpha * K), at least 1."""
    return min(batch_size, max(1, int(round(alpha * batch_size))))


def select_subset(
    scores: torch.Tensor,
    n: int,
    s_min: float,
    s_max: float,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Draw ``n`` batch positions without replacement, with probability
    proportional to the normalised ADLP. Returns sorted positions."""
    probs = selection_probs(scores.double().cpu(), s_min, s_max)
    pos = torch.multinomial(probs, n, replacement=False, generator=generator)
    return pos.sort().values


def select_uniform(
    batch_size: int, n: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """The "SAM + Random" baseline: n positions uniformly at random."""
    return torch.randperm(batch_size, generator=generator)[:n].sort().values


def select_topk_loss(losses: torch.Tensor, n: int) -> torch.Tensor:
    """K-SAM-style: the n positions with the highest loss."""
    return torch.topk(losses.detach().float().cpu(), n).indices.sort().values

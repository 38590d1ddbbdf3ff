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
    not starved. A batch with no scored sample becomes all-equal (uniform).
    Branch-free, so a device tensor never waits on the host."""
    nan = torch.isnan(scores)
    top = torch.where(nan, -torch.inf, scores).max()
    filled = torch.where(nan, top, scores)
    return torch.where(nan.all(), torch.ones_like(scores), filled)


def normalize_scores(
    scores: torch.Tensor, s_min: float, s_max: float
) -> torch.Tensor:
    """Eq. 8: min-max normalise the batch's scores into [s_min, s_max].

    All-equal scores (max == min) map to s_max everywhere, i.e. a uniform
    draw (the 0/0 of that case is computed and then discarded, so the
    choice needs no host read).
    """
    lo, hi = scores.min(), scores.max()
    span = hi - lo
    scaled = s_min + (scores - lo) / span * (s_max - s_min)
    return torch.where(span > 0, scaled, torch.full_like(scores, s_max))


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
    proportional to the normalised ADLP. Returns sorted positions, on the
    device of ``scores`` (``generator`` must live there too)."""
    probs = selection_probs(scores.double(), s_min, s_max)
    return draw_without_replacement(probs, n, generator).sort().values


def draw_without_replacement(
    probs: torch.Tensor, n: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """``n`` distinct positions, drawn one after another with probability
    proportional to ``probs`` among those left: the top n of p_i / E_i with
    E_i ~ Exp(1). This is the draw ``torch.multinomial`` makes without
    replacement (bit-identical on the CPU for the same generator), minus its
    host-side validity checks, which would stall a GPU every step."""
    keys = probs / torch.empty_like(probs).exponential_(1, generator=generator)
    return keys.topk(n).indices


def select_uniform(
    batch_size: int, n: int, generator: Optional[torch.Generator] = None
) -> torch.Tensor:
    """The "SAM + Random" baseline: n positions uniformly at random, on the
    generator's device. The CPU keeps its permutation stream; on a GPU the
    top n of uniform keys give the same distribution without a host sync."""
    device = generator.device if generator is not None else 'cpu'
    if torch.device(device).type == 'cpu':
        pos = torch.randperm(batch_size, generator=generator)[:n]
    else:
        keys = torch.rand(batch_size, device=device, generator=generator)
        pos = keys.topk(n).indices
    return pos.sort().values


def select_topk_loss(losses: torch.Tensor, n: int) -> torch.Tensor:
    """K-SAM-style: the n positions with the highest loss (on the losses'
    device)."""
    return torch.topk(losses.detach().float(), n).indices.sort().values

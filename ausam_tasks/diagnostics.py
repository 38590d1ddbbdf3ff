"""Checks, on a probe batch, that AUSAM's scores carry information.

Two statements of the paper can be measured in a run:

- Lemma 1 (Eq. 5): DLP_i / rho approximates ||grad l_i(w)||, with
  DLP_i = |l_i(w + eps) - l_i(w)| and eps the SAM perturbation of Eq. 2;
- Theorem 4 (Eq. 11): a subset drawn with probability growing with the
  gradient norm represents the batch gradient better than a uniform one.

Everything here is plain PyTorch. A probe batch is reached through a
closure ``closure(positions) -> {name: per-sample loss}`` (the core's
convention; ``positions=None`` is the whole batch). Per-sample gradients
are only well defined when a sample's loss does not depend on the others,
so run the model in eval mode (BatchNorm with running statistics); then
the batch gradient is exactly the mean of the per-sample gradients.
"""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch

from .finite import total_loss
from .perturb import perturbation, perturbed
from .selection import select_subset, select_uniform, subset_size
from .step import Closure


def _total(losses) -> torch.Tensor:
    """Sum of the closure's per-sample loss vectors (not checked: the
    diagnostics report what they see)."""
    if isinstance(losses, torch.Tensor):
        losses = {'loss': losses}
    return total_loss(losses, 0, '', check_finite=False)


@dataclass
class PerSampleGrads:
    """One pass over a probe batch, one sample at a time."""

    losses: torch.Tensor  # (P,) float64, l_i
    norms: torch.Tensor  # (P,) float64, ||grad l_i||
    sums: torch.Tensor  # (k, d) float32: weights^T G, G = per-sample grads


def per_sample_grads(
    closure: Closure,
    params: Sequence[torch.Tensor],
    size: int,
    weights: Optional[torch.Tensor] = None,
    chunk_rows: Optional[int] = None,
) -> PerSampleGrads:
    """Exact per-sample gradients by one backward pass per sample.

    The (P, d) matrix G of per-sample gradients is never stored: only the
    norms and ``weights^T G`` (``weights`` of shape (P, k), e.g. from
    ``subset_weights``), so memory is O(k d) whatever P is. A loop rather
    than ``torch.func.vmap`` because the loss belongs to the model and
    reads per-sample data (labels, targets) from Python objects that vmap
    cannot batch; the model protocol only promises ``closure(positions)``.
    ``chunk_rows``: gradients buffered per product (default: ~64 MB).
    """
    params = list(params)
    if size < 1:
        raise ValueError(f'the probe batch is empty (size {size})')
    device = params[0].device
    w = weights if weights is not None else torch.empty(size, 0)
    if w.shape[0] != size:
        raise ValueError(f'weights have {w.shape[0]} rows for {size} samples')
    w = w.to(device, torch.float32)
    d = sum(p.numel() for p in params)
    sums = torch.zeros(w.shape[1], d, device=device)
    losses = torch.empty(size, dtype=torch.float64)
    norms = torch.empty(size, dtype=torch.float64)
    # Rows wait in a buffer of at most ~64 MB, so weights^T G is a few
    # matrix products rather than one memory-bound rank-1 update per row.
    rows = chunk_rows or max(1, min(32, (1 << 24) // max(d, 1)))
    buf = torch.empty(rows, d, device=device) if w.shape[1] else None
    start = 0
    for i in range(size):
        loss = _total(closure(torch.tensor([i])))
        if loss.numel() != 1:
            raise ValueError(
                f'the closure returned {loss.numel()} losses for one sample'
            )
        grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)
        g = torch.cat(
            [
                (gi if gi is not None else torch.zeros_like(p))
                .detach()
                .reshape(-1)
                .float()
                for gi, p in zip(grads, params)
            ]
        )
        losses[i] = float(loss.detach())
        norms[i] = float(torch.linalg.vector_norm(g.double()))
        if buf is not None:
            buf[i - start] = g
            if i + 1 - start == rows or i + 1 == size:
                sums.addmm_(w[start : i + 1].T, buf[: i + 1 - start])
                start = i + 1
    return PerSampleGrads(losses, norms, sums)


def per_sample_grad_norms(
    closure: Closure, params: Sequence[torch.Tensor], size: int
) -> torch.Tensor:
    """||grad l_i(w)|| of each of the ``size`` samples (float64, CPU)."""
    return per_sample_grads(closure, params, size).norms


def unflatten(flat: torch.Tensor, params: Sequence[torch.Tensor]) -> list:
    """A flat vector back into tensors shaped like ``params``."""
    out, at = [], 0
    for p in params:
        out.append(flat[at : at + p.numel()].view_as(p).to(p.dtype))
        at += p.numel()
    return out


@torch.no_grad()
def sam_perturbation(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    rho: float,
    adaptive: bool = False,
    eta: float = 0.01,
) -> List[torch.Tensor]:
    """eps of Eq. 2 (or ASAM's) for ``grads``, by the core's own formula."""
    stand_ins = []
    for p, g in zip(params, grads):
        q = p.detach().clone()
        q.grad = g.detach().to(p.dtype)
        stand_ins.append(q)
    return perturbation(stand_ins, rho, adaptive, eta)


def batch_dlp(
    closure: Closure,
    params: Sequence[torch.Tensor],
    rho: float,
    adaptive: bool = False,
    eta: float = 0.01,
) -> torch.Tensor:
    """DLP_i = |l_i(w + eps) - l_i(w)| (Eq. 5) of one SAM step on the whole
    batch, eps from the batch's mean loss (Eq. 2). float64, CPU."""
    params = list(params)
    loss_w = _total(closure(None))
    grads = torch.autograd.grad(loss_w.mean(), params, allow_unused=True)
    grads = [
        g if g is not None else torch.zeros_like(p)
        for g, p in zip(grads, params)
    ]
    eps = sam_perturbation(params, grads, rho, adaptive, eta)
    with perturbed(params, eps), torch.no_grad():
        loss_eps = _total(closure(None))
    return (loss_eps.detach() - loss_w.detach()).abs().double().cpu()


# --- correlations -------------------------------------------------------
def ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks, ties sharing their average rank (as scipy)."""
    x = torch.as_tensor(x).double().flatten()
    _, inverse, counts = torch.unique(
        x, sorted=True, return_inverse=True, return_counts=True
    )
    end = torch.cumsum(counts, 0).double()
    avg = end - (counts.double() - 1) / 2  # mean of start+1 .. end
    return avg[inverse]


def _finite_pairs(x, y) -> tuple:
    x = torch.as_tensor(x).double().flatten()
    y = torch.as_tensor(y).double().flatten()
    if x.numel() != y.numel():
        raise ValueError(f'{x.numel()} values against {y.numel()}')
    keep = torch.isfinite(x) & torch.isfinite(y)
    return x[keep], y[keep]


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson's r over the pairs where both values are finite; NaN for
    fewer than 2 such pairs or a constant input."""
    x, y = _finite_pairs(x, y)
    if x.numel() < 2:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    den = float(torch.linalg.vector_norm(xc) * torch.linalg.vector_norm(yc))
    if den == 0.0:
        return math.nan
    return max(-1.0, min(1.0, float((xc * yc).sum()) / den))


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rho: Pearson's r of the (tie-averaged) ranks of the
    pairs where both values are finite (e.g. scored samples only)."""
    x, y = _finite_pairs(x, y)
    return pearson(ranks(x), ranks(y)) if x.numel() >= 2 else math.nan


# --- subset gradients (Theorem 4) ---------------------------------------
def subset_weights(size: int, subsets: Sequence[torch.Tensor]) -> torch.Tensor:
    """(size, 1 + S) weights: column 0 averages the whole batch (g_B),
    column j averages subset j (g_S, the plain mean AUSAM trains on)."""
    w = torch.zeros(size, 1 + len(subsets))
    w[:, 0] = 1.0 / size
    for j, pos in enumerate(subsets):
        pos = torch.as_tensor(pos, dtype=torch.int64)
        if pos.numel() == 0 or pos.unique().numel() != pos.numel():
            raise ValueError(f'subset {j} is empty or repeats a position')
        w[pos, 1 + j] = 1.0 / pos.numel()
    return w


def subset_gradient_errors(sums: torch.Tensor) -> torch.Tensor:
    """||g_S - g_B|| / ||g_B|| for each subset, from ``weights^T G`` with
    g_B in row 0 (see ``subset_weights``). float64; NaN if g_B = 0."""
    sums = sums.double()
    ref = sums[0]
    norm = float(torch.linalg.vector_norm(ref))
    err = torch.linalg.vector_norm(sums[1:] - ref, dim=1)
    return err.cpu() / norm if norm > 0 else torch.full_like(err, math.nan)


def draw_subsets(
    size: int,
    alpha: float,
    draws: int,
    seed: int = 0,
    scores: Optional[torch.Tensor] = None,
    s_min: float = 0.1,
    s_max: float = 0.5,
) -> Dict[str, List[torch.Tensor]]:
    """``draws`` subsets of n = round(alpha P) positions drawn uniformly,
    and, with ``scores``, as many drawn by the core's ADLP selection
    (Eq. 7-8; never-scored samples count as the batch maximum)."""
    n = subset_size(size, alpha)
    g = torch.Generator().manual_seed(int(seed))
    out = {'uniform': [select_uniform(size, n, g) for _ in range(draws)]}
    if scores is not None:
        out['adlp'] = [
            select_subset(scores, n, s_min, s_max, g) for _ in range(draws)
        ]
    return out


# --- coverage -----------------------------------------------------------
def coverage(
    counts: torch.Tensor, baseline: Optional[torch.Tensor] = None
) -> Dict[str, object]:
    """How often each sample was selected since ``baseline`` (the counts at
    the end of the scoring epochs): histogram (``hist[c]`` = number of
    samples selected c times), fraction never selected, and quantiles."""
    c = torch.as_tensor(counts, dtype=torch.int64).flatten()
    if baseline is not None:
        c = c - torch.as_tensor(baseline, dtype=torch.int64).flatten()
    if c.numel() == 0:
        raise ValueError('no selection counts')
    if (c < 0).any():
        raise ValueError('selection counts fell below their baseline')
    q = torch.quantile(c.double(), torch.tensor([0.1, 0.5, 0.9]).double())
    return {
        'hist': torch.bincount(c).tolist(),
        'never_frac': float((c == 0).double().mean()),
        'mean': float(c.double().mean()),
        'min': int(c.min()),
        'max': int(c.max()),
        'p10': float(q[0]),
        'p50': float(q[1]),
        'p90': float(q[2]),
    }


# --- everything on one probe batch -------------------------------------
def probe_diagnostics(
    closure: Closure,
    params: Sequence[torch.Tensor],
    size: int,
    rho: float,
    alpha: float,
    draws: int = 8,
    seed: int = 0,
    scores: Optional[torch.Tensor] = None,
    s_min: float = 0.1,
    s_max: float = 0.5,
    adaptive: bool = False,
    eta: float = 0.01,
) -> Dict[str, object]:
    """All probe-batch diagnostics in two per-sample passes (at w, then at
    w + eps): 2P forward/backward passes of one sample each.

    Returns scalars (correlations, errors) and per-sample arrays
    (``grad_norm``, ``dlp``, ``loss``, ``adlp``). Run the model in eval
    mode; gradients are taken with ``torch.autograd.grad``, so ``p.grad``
    is left as it was.
    """
    params = list(params)
    subsets = draw_subsets(size, alpha, draws, seed, scores, s_min, s_max)
    kinds = list(subsets)
    weights = subset_weights(size, [s for k in kinds for s in subsets[k]])
    at_w = per_sample_grads(closure, params, size, weights)
    # eps from the probe batch's gradient g_B = mean of per-sample grads.
    eps = sam_perturbation(
        params, unflatten(at_w.sums[0], params), rho, adaptive, eta
    )
    with perturbed(params, eps):
        at_eps = per_sample_grads(closure, params, size, weights)
    dlp = (at_eps.losses - at_w.losses).abs()
    out: Dict[str, object] = {
        'grad_norm': at_w.norms,
        'dlp': dlp,
        'loss': at_w.losses,
        'grad_norm_mean': float(at_w.norms.mean()),
        'dlp_over_rho_mean': float(dlp.mean()) / rho if rho > 0 else math.nan,
        'dlp_spearman': spearman(dlp, at_w.norms),
        'dlp_pearson': pearson(dlp, at_w.norms),
        'subset_size': subset_size(size, alpha),
    }
    for where, res in (('w', at_w), ('eps', at_eps)):
        errs = subset_gradient_errors(res.sums)
        for j, kind in enumerate(kinds):
            e = errs[j * draws : (j + 1) * draws]
            out[f'err_{kind}_{where}'] = float(e.mean())
            out[f'err_{kind}_{where}_std'] = (
                float(e.std()) if draws > 1 else 0.0
            )
    if scores is not None:
        scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
        seen = ~torch.isnan(scores)
        out['adlp'] = scores
        out['adlp_scored_frac'] = float(seen.double().mean())
        out['adlp_spearman'] = spearman(scores[seen], at_w.norms[seen])
        out['adlp_loss_spearman'] = spearman(scores[seen], at_w.losses[seen])
    return out

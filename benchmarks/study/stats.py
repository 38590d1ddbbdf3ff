"""The statistics of a report: per-method summaries and paired
differences over common seeds."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path


def t_interval(diffs: list) -> tuple:
    """Mean, standard error and 95% t-interval half-width of paired
    differences (NaN where fewer than two)."""
    n = len(diffs)
    mean = statistics.mean(diffs) if diffs else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    se = statistics.stdev(diffs) / math.sqrt(n)
    return mean, se, t.ppf(0.975, n - 1) * se


def load_cells(out: Path) -> list:
    return [json.loads(p.read_text()) for p in sorted(out.glob('*.json'))]


def summarize(cells: list, methods: list) -> list:
    """One row per method: held-out mean/std, paired difference to SAM,
    training-set accuracy, training wall time and SAM%."""
    by = {}
    for c in cells:
        by.setdefault(c['method'], {})[c['seed']] = c
    order = [m for m in methods if m in by] + sorted(
        m for m in by if m not in methods
    )
    sam = by.get('SAM', {})
    sam_time = (
        statistics.mean(c['train_s'] for c in sam.values()) if sam else None
    )
    rows = []
    for m in order:
        cs = by[m]
        acc = [c['holdout_top1'] for c in cs.values()]
        seeds = sorted(s for s in cs if s in sam)
        diff = [cs[s]['holdout_top1'] - sam[s]['holdout_top1'] for s in seeds]
        d_mean, d_se, d_half = t_interval(diff)
        time_s = statistics.mean(c['train_s'] for c in cs.values())
        rows.append(
            dict(
                method=m,
                n=len(acc),
                seeds=sorted(cs),
                holdout_mean=statistics.mean(acc),
                holdout_std=statistics.stdev(acc) if len(acc) > 1 else 0.0,
                diff_sam=d_mean,
                diff_sam_se=d_se,
                diff_sam_ci=d_half,
                diff_sam_n=len(diff),
                train_mean=statistics.mean(
                    c['train_top1'] for c in cs.values()
                ),
                train_s=time_s,
                sam_pct=100.0 * sam_time / time_s if sam_time else None,
            )
        )
    return rows


def paired(cells: list, a: str, b: str) -> tuple:
    """Paired difference a - b of held-out top-1 over common seeds."""
    ca = {c['seed']: c['holdout_top1'] for c in cells if c['method'] == a}
    cb = {c['seed']: c['holdout_top1'] for c in cells if c['method'] == b}
    diffs = [ca[s] - cb[s] for s in sorted(set(ca) & set(cb))]
    return (*t_interval(diffs), len(diffs))

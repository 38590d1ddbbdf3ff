"""The accuracy-against-wall-time plot of a report."""

from __future__ import annotations

from pathlib import Path


def plot(cells, rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(rows):
        color = f'C{i}'
        cs = [c for c in cells if c['method'] == r['method']]
        ax.scatter(
            [c['train_s'] for c in cs],
            [c['holdout_top1'] for c in cs],
            color=color,
            alpha=0.35,
            s=14,
        )
        ax.errorbar(
            r['train_s'],
            r['holdout_mean'],
            yerr=r['holdout_std'],
            fmt='o',
            color=color,
            capsize=3,
            label=r['method'],
        )
    ax.set_xlabel('training wall time per run (s)')
    ax.set_ylabel('held-out top-1 (%)')
    ax.set_title(f'{title}: mean ± std over seeds, dots = seeds')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""Accuracy curves as a PNG, shared by the demo and the benchmarks."""

from pathlib import Path
from typing import Dict, Sequence, Tuple

# label -> (x values, y values) or (x values, y values, y error bars)
Curves = Dict[str, Tuple[Sequence[float], ...]]


def save_curves(
    path: Path, panels: Sequence[Tuple[str, str, Curves]], title: str = ''
) -> None:
    """One panel per ``(xlabel, ylabel, curves)`` side by side, saved as
    ``path`` (no display needed)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 4), squeeze=False
    )
    for ax, (xlabel, ylabel, curves) in zip(axes[0], panels):
        for label, (x, y, *err) in curves.items():
            yerr = err[0] if err else None
            ax.errorbar(x, y, yerr=yerr, marker='o', capsize=3, label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""What a cell did with its flipped training labels."""

from __future__ import annotations

import json
from pathlib import Path


def noisy_label_summary(runner, data_root) -> dict:
    """What a run did with its flipped training labels: the share of them it
    fits (predicts the flipped label) or corrects (predicts the true one),
    its accuracy on the unflipped images, and, for a wrapper with a score
    table (AUSAM; SAM+Random keeps one too, unused by its uniform draws),
    where the scored flipped images sit in that table."""
    import numpy as np
    import torch

    noisy = json.loads((Path(data_root) / 'noisy_indices.json').read_text())
    true_label = dict(zip(noisy['indices'], noisy['clean_labels']))
    pred, given = {}, {}
    model = runner.model
    model.eval()
    with torch.no_grad():
        for batch in runner.test_dataloader:  # training images, unaugmented
            for sample in model.test_step(batch):
                i = int(sample.sample_idx)
                pred[i] = int(sample.pred_score.argmax())
                given[i] = int(sample.gt_label)
    flipped = [i for i in true_label if i in pred]
    if len(flipped) != len(true_label) or len(pred) != len(
        runner.train_dataloader.dataset
    ):
        raise RuntimeError(
            f'{data_root}: the training-set predictions cover {len(pred)} of '
            f'{len(runner.train_dataloader.dataset)} images and '
            f'{len(flipped)} of the {len(true_label)} flipped ones listed in '
            'noisy_indices.json; the cache may come from another split '
            '(delete the folder to rebuild it) or the test loader may not '
            'cover the whole training set'
        )
    clean = [i for i in pred if i not in true_label]
    out = dict(
        flipped_images=len(flipped),
        flipped_fitted_pct=100.0
        * sum(pred[i] == given[i] for i in flipped)
        / len(flipped),
        flipped_corrected_pct=100.0
        * sum(pred[i] == true_label[i] for i in flipped)
        / len(flipped),
        clean_train_top1=100.0
        * sum(pred[i] == given[i] for i in clean)
        / len(clean),
    )
    scores = selector_scores(runner, len(pred))
    if scores is not None:
        from scipy.stats import rankdata

        n = len(pred)
        scored = np.isfinite(scores)  # NaN: never scored
        is_flipped = np.zeros(n, dtype=bool)
        is_flipped[flipped] = True
        s, f = scores[scored], is_flipped[scored]
        # Rank 1 = the highest score, ties share their mean rank; a mean
        # rank percentile near 50 means the table does not tell the flipped
        # images apart.
        rank = rankdata(-s, method='average')
        pct = 100.0 * rank / len(s)
        top = rank <= len(s) / 2
        out.update(
            scored_pct=100.0 * scored.mean(),
            flipped_share_of_top_half_pct=100.0 * f[top].mean(),
            flipped_mean_rank_pct=float(pct[f].mean()),
            flipped_mean_score=float(s[f].mean()),
            clean_mean_score=float(s[~f].mean()),
        )
    return out


def selector_scores(runner, n: int):
    """The per-sample scores a method selects by, float64 numpy (NaN:
    never scored): AUSAM's table, or InfoBatch's latest losses (high: kept,
    low: may be pruned). None for a method without any."""
    import torch

    sampler = getattr(runner.train_dataloader, 'sampler', None)
    info = getattr(sampler, 'info', None)
    if info is not None:
        return info.scores[:n].double().numpy()
    table = getattr(getattr(runner.optim_wrapper, 'core', None), 'table', None)
    if table is not None and len(table):
        return table.scores(torch.arange(n)).double().numpy()
    return None

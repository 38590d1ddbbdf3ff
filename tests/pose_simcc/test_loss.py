"""The per-sample KL-discrete loss against mmpose's KLDiscretLoss formula."""

import numpy as np
import pytest
import torch

from tasks.pose_simcc.models import KLDiscreteLoss


def mmpose_formula(
    pred_x,
    pred_y,
    gt_x,
    gt_y,
    weight,
    beta=1.0,
    label_softmax=False,
    label_beta=10.0,
):
    """mmpose 1.3.2 KLDiscretLoss, written out with loops in float64:
    sum over samples n and joints k of w[n,k] * sum_axis mean_bins
    t * (log t - log softmax(beta * p)), divided by K."""
    n_samples, num_k, _ = pred_x.shape
    total = 0.0
    for pred, gt in ((pred_x, gt_x), (pred_y, gt_y)):
        for n in range(n_samples):
            for k in range(num_k):
                p = pred[n, k].astype(np.float64) * beta
                log_q = p - p.max() - np.log(np.exp(p - p.max()).sum())
                t = gt[n, k].astype(np.float64)
                if label_softmax:
                    e = np.exp(label_beta * t - (label_beta * t).max())
                    t = e / e.sum()
                kl = np.where(
                    t > 0, t * (np.log(np.where(t > 0, t, 1)) - log_q), 0.0
                )
                total += weight[n, k] * kl.mean()
    return total / num_k


def _batch(seed, n=5, k=16, wx=24, wy=20):
    rng = np.random.default_rng(seed)
    pred_x, pred_y = rng.normal(size=(n, k, wx)), rng.normal(size=(n, k, wy))
    gt_x = np.exp(
        -0.5 * ((np.arange(wx) - rng.uniform(0, wx, (n, k, 1))) / 2) ** 2
    )
    gt_y = np.exp(
        -0.5 * ((np.arange(wy) - rng.uniform(0, wy, (n, k, 1))) / 2) ** 2
    )
    gt_x[0, 0] = 0.0  # an all-zero label (joint outside the crop)
    weight = (rng.random((n, k)) > 0.2).astype(np.float64)
    return pred_x, pred_y, gt_x, gt_y, weight


@pytest.mark.parametrize(
    'kwargs',
    [dict(), dict(beta=10.0), dict(label_softmax=True, label_beta=10.0)],
)
def test_batch_mean_is_the_formula_per_sample(kwargs):
    pred_x, pred_y, gt_x, gt_y, weight = _batch(0)
    loss = KLDiscreteLoss(use_target_weight=True, **kwargs)(
        (torch.tensor(pred_x), torch.tensor(pred_y)),
        (torch.tensor(gt_x), torch.tensor(gt_y)),
        torch.tensor(weight),
    )
    assert loss.shape == (5,)
    # mmpose's value is the formula summed over the batch; per sample it is
    # the same formula on a batch of one.
    expected_total = mmpose_formula(
        pred_x, pred_y, gt_x, gt_y, weight, **kwargs
    )
    assert loss.sum().item() == pytest.approx(expected_total, rel=1e-10)
    assert loss.mean().item() == pytest.approx(expected_total / 5, rel=1e-10)
    for n in range(5):
        one = mmpose_formula(
            pred_x[n : n + 1],
            pred_y[n : n + 1],
            gt_x[n : n + 1],
            gt_y[n : n + 1],
            weight[n : n + 1],
            **kwargs,
        )
        assert loss[n].item() == pytest.approx(one, rel=1e-10)


def test_without_target_weight_all_joints_count():
    pred_x, pred_y, gt_x, gt_y, weight = _batch(1)
    loss = KLDiscreteLoss(use_target_weight=False)(
        (torch.tensor(pred_x), torch.tensor(pred_y)),
        (torch.tensor(gt_x), torch.tensor(gt_y)),
        torch.tensor(weight),
    )
    ones = np.ones_like(weight)
    assert loss.sum().item() == pytest.approx(
        mmpose_formula(pred_x, pred_y, gt_x, gt_y, ones), rel=1e-10
    )


def test_a_sample_loss_does_not_depend_on_the_rest_of_the_batch():
    # AUSAM scores a subset of the batch: each sample's loss must be its own.
    pred_x, pred_y, gt_x, gt_y, weight = (torch.tensor(a) for a in _batch(2))
    fn = KLDiscreteLoss()
    full = fn((pred_x, pred_y), (gt_x, gt_y), weight)
    pos = torch.tensor([3, 1])
    sub = fn((pred_x[pos], pred_y[pos]), (gt_x[pos], gt_y[pos]), weight[pos])
    torch.testing.assert_close(sub, full[pos])


def test_mismatched_label_size_is_reported():
    pred = torch.zeros(2, 16, 10)
    with pytest.raises(ValueError, match='simcc_split_ratio'):
        KLDiscreteLoss()(
            (pred, pred), (torch.zeros(2, 16, 12), pred), torch.ones(2, 16)
        )

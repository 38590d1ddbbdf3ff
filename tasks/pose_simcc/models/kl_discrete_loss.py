"""Per-sample KL-discrete loss for SimCC labels."""

import torch.nn.functional as F
from torch import nn

from ..registry import MODELS


@MODELS.register_module()
class KLDiscreteLoss(nn.Module):
    """KL divergence between SimCC label vectors and softmax(predictions), per
    sample.

    For sample n with K keypoints, target weights w[n, k] and bins along each
    axis,

        loss[n] = 1/K * sum_k w[n, k] * sum_{x, y} mean_bins KL(t ||
        softmax(beta p))

    with KL(t || q) = t * (log t - log q) elementwise (0 where t == 0). This is
    mmpose's ``KLDiscretLoss`` applied to one sample: mmpose (1.3.2) returns
    the same sum over the batch, so ``loss.sum()`` equals mmpose's value and
    the mean that mmengine logs is that value divided by the batch size.

    Args:
        beta: softmax temperature on predictions.
        label_softmax: apply softmax(label_beta * t) to the labels first.
        label_beta: temperature of that label softmax.
        use_target_weight: weight joints by ``target_weight`` (else all 1).
    """

    def __init__(
        self,
        beta=1.0,
        label_softmax=False,
        label_beta=10.0,
        use_target_weight=True,
    ):
        super().__init__()
        self.beta = beta
        self.label_softmax = label_softmax
        self.label_beta = label_beta
        self.use_target_weight = use_target_weight

    def _axis_loss(self, pred, target):
        log_q = F.log_softmax(pred * self.beta, dim=-1)
        if self.label_softmax:
            target = F.softmax(target * self.label_beta, dim=-1)
        # (B, K): mean over bins of the pointwise KL term.
        return F.kl_div(log_q, target, reduction='none').mean(dim=-1)

    def forward(self, pred_simcc, gt_simcc, target_weight=None):
        """Return the loss of each sample, shape (B,)."""
        pred_x, pred_y = pred_simcc
        gt_x, gt_y = gt_simcc
        for axis, pred, gt in (('x', pred_x, gt_x), ('y', pred_y, gt_y)):
            if pred.shape != gt.shape:
                raise ValueError(
                    f'SimCC {axis} prediction {tuple(pred.shape)} and label '
                    f'{tuple(gt.shape)} differ; check the head input_size and '
                    'simcc_split_ratio against the codec'
                )
        num_keypoints = pred_x.shape[1]
        per_joint = self._axis_loss(pred_x, gt_x) + self._axis_loss(
            pred_y, gt_y
        )
        if self.use_target_weight:
            if target_weight is None:
                raise ValueError(
                    'KLDiscreteLoss(use_target_weight=True) needs '
                    'target_weight (the keypoint_weights label)'
                )
            per_joint = per_joint * target_weight.reshape(per_joint.shape).to(
                per_joint.dtype
            )
        return per_joint.sum(dim=1) / num_keypoints


# mmpose spells it without the second 'e'; accept its configs unchanged.
MODELS.register_module(name='KLDiscretLoss', module=KLDiscreteLoss)

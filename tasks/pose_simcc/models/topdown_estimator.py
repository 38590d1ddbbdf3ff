"""Top-down SimCC pose estimator (backbone + SimCC head + per-sample loss)."""

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from ausam_tasks.engine import SAMTrainStepMixin

from ..registry import KEYPOINT_CODECS, MODELS


@MODELS.register_module()
class TopdownPoseEstimator(SAMTrainStepMixin, BaseModel):
    """Estimates the keypoints of one person per crop.

    Args:
        backbone, head, loss: configs built from this task's MODELS registry.
        codec: a ``SimCCLabel`` config (mmpose codec) used to decode
            predictions; it must match the one in the pipeline's
            ``GenerateTarget``.
        test_cfg: ``flip_test`` (average with the horizontally flipped crop).
        data_preprocessor: e.g. ``PoseDataPreprocessor`` (mean/std, BGR->RGB).

    Modes of ``forward(inputs, data_samples, mode)``:
        'loss': ``dict(loss_kpt=Tensor[B], acc_pose=scalar)``; the per-sample
            loss vector is what SAM/AUSAM wrappers score.
        'predict': the data samples with ``pred_instances.keypoints`` (1, K, 2)
            and ``keypoint_scores`` (1, K) in original-image pixel coordinates.
        'tensor': the raw (pred_x, pred_y) SimCC logits.
    """

    def __init__(
        self,
        backbone,
        head,
        codec,
        loss=dict(type='KLDiscreteLoss', use_target_weight=True),
        test_cfg=None,
        data_preprocessor=None,
        init_cfg=None,
    ):
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg
        )
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.loss_module = MODELS.build(loss)
        self.codec = KEYPOINT_CODECS.build(codec)
        self.test_cfg = dict(test_cfg or {})

    def _simcc(self, inputs):
        return self.head(self.backbone(inputs))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._simcc(inputs)
        raise ValueError(
            f"TopdownPoseEstimator mode={mode!r}; use 'loss', "
            "'predict' or 'tensor'"
        )

    def loss(self, inputs, data_samples):
        pred_x, pred_y = self._simcc(inputs)
        labels = [ds.gt_instance_labels for ds in data_samples]
        if 'keypoint_x_labels' not in labels[0]:
            raise ValueError(
                'training data samples have no SimCC labels; the train '
                'pipeline '
                "needs GenerateTarget(encoder=dict(type='SimCCLabel', ...)) "
                'before PackPoseInputs'
            )
        gt_x = torch.cat([lb.keypoint_x_labels for lb in labels]).to(pred_x)
        gt_y = torch.cat([lb.keypoint_y_labels for lb in labels]).to(pred_y)
        weights = torch.cat([lb.keypoint_weights for lb in labels]).to(pred_x)
        losses = dict(
            loss_kpt=self.loss_module((pred_x, pred_y), (gt_x, gt_y), weights)
        )
        with torch.no_grad():
            losses['acc_pose'] = self._label_accuracy(
                pred_x, pred_y, gt_x, gt_y, weights
            )
        return losses

    def _label_accuracy(self, pred_x, pred_y, gt_x, gt_y, weights, thr=0.05):
        """Share of weighted joints whose argmax lies within thr * input
        size."""
        ratio = self.codec.simcc_split_ratio
        size = pred_x.new_tensor([pred_x.shape[-1], pred_y.shape[-1]]) / ratio
        pred = torch.stack([pred_x.argmax(-1), pred_y.argmax(-1)], -1) / ratio
        gt = torch.stack([gt_x.argmax(-1), gt_y.argmax(-1)], -1) / ratio
        dist = ((pred - gt) / size).norm(dim=-1)
        valid = weights > 0
        if not valid.any():
            return pred_x.new_tensor(0.0)
        return (dist[valid] < thr).float().mean()

    @torch.no_grad()
    def predict(self, inputs, data_samples):
        flip_indices = None
        if self.test_cfg.get('flip_test', False):
            flip_indices = data_samples[0].metainfo.get('flip_indices')
            if flip_indices is None:
                raise ValueError(
                    "test_cfg.flip_test needs 'flip_indices' in the data "
                    'samples; keep it in PackPoseInputs(meta_keys=...)'
                )
        pred_x, pred_y = self.predict_simcc(inputs, flip_indices)
        return self.add_predictions(pred_x, pred_y, data_samples)

    def predict_simcc(self, inputs, flip_indices=None):
        """SimCC vectors; with ``flip_indices``, averaged with the flipped
        crop's.

        The flipped crop's vectors are mapped back before averaging: joints are
        swapped left/right by ``flip_indices`` and the x bins are reversed.
        """
        pred_x, pred_y = self._simcc(inputs)
        if flip_indices is not None:
            fx, fy = self._simcc(inputs.flip(-1))
            pred_x = 0.5 * (pred_x + fx[:, flip_indices].flip(-1))
            pred_y = 0.5 * (pred_y + fy[:, flip_indices])
        return pred_x, pred_y

    def add_predictions(self, pred_x, pred_y, data_samples):
        """Decode SimCC vectors and map keypoints from the crop to the
        image."""
        keypoints, scores = self.codec.decode(
            pred_x.float().cpu().numpy(), pred_y.float().cpu().numpy()
        )
        for i, ds in enumerate(data_samples):
            meta = ds.metainfo
            size = np.asarray(meta['input_size'], dtype=np.float32)
            scale = np.asarray(meta['input_scale'], dtype=np.float32)
            center = np.asarray(meta['input_center'], dtype=np.float32)
            kpts = keypoints[i : i + 1] / size * scale + center - 0.5 * scale
            pred = InstanceData()
            pred.keypoints = kpts
            pred.keypoint_scores = scores[i : i + 1]
            pred.keypoints_visible = scores[i : i + 1]
            if 'bboxes' in ds.gt_instances:
                pred.bboxes = ds.gt_instances.bboxes
                pred.bbox_scores = ds.gt_instances.bbox_scores
            ds.pred_instances = pred
        return data_samples

"""mmpose's MPII dataset and top-down pipeline, built through
tasks.pose_simcc."""

import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from .helpers import CONFIGS, REPO, mpii_sample_or_skip


def _real_dataset(pipeline):
    from tasks.pose_simcc.registry import DATASETS

    root, _ = mpii_sample_or_skip()
    cfg = Config.fromfile(str(CONFIGS['ausam']))
    init_default_scope(cfg.default_scope)
    return DATASETS.build(
        dict(
            type='MpiiDataset',
            data_root=str(root),
            ann_file='test_mpii.json',
            data_prefix=dict(img=''),
            pipeline=pipeline,
        )
    )


def test_real_images_give_simcc_targets():
    cfg = Config.fromfile(str(CONFIGS['ausam']))
    pipeline = list(cfg.train_pipeline)
    # RandomHalfBody is not in mmpose's MPII recipe; exercise it here anyway.
    pipeline.insert(
        3,
        dict(
            type='RandomHalfBody',
            prob=1.0,
            min_total_keypoints=8,
            min_upper_keypoints=2,
            min_lower_keypoints=2,
        ),
    )
    dataset = _real_dataset(pipeline)
    assert len(dataset) == 5
    for i in range(len(dataset)):
        out = dataset[i]
        sample = out['data_samples']
        labels = sample.gt_instance_labels
        assert tuple(out['inputs'].shape) == (3, 256, 256)
        assert sample.sample_idx == i
        assert tuple(labels.keypoint_x_labels.shape) == (1, 16, 512)
        assert tuple(labels.keypoint_y_labels.shape) == (1, 16, 512)
        assert tuple(labels.keypoint_weights.shape) == (1, 16)
        assert sample.metainfo['flip_indices'][0] == 5  # right ankle <-> left


def test_val_pipeline_keeps_original_keypoints_and_index():
    _, anns = mpii_sample_or_skip()
    cfg = Config.fromfile(str(CONFIGS['adam']))
    dataset = _real_dataset(list(cfg.val_pipeline))
    for i, ann in enumerate(anns):
        sample = dataset[i]['data_samples']
        assert sample.sample_idx == i
        np.testing.assert_allclose(
            sample.gt_instances.keypoints[0],
            np.asarray(ann['joints']),
            rtol=0,
            atol=1e-3,
        )
        assert tuple(sample.metainfo['input_size']) == (256, 256)


def test_simcc_targets_peak_at_the_transformed_keypoints(mpii_fixture):
    from tasks.pose_simcc.registry import DATASETS

    cfg = Config.fromfile(str(CONFIGS['adam']))
    init_default_scope(cfg.default_scope)
    pipeline = list(cfg.train_pipeline[:-1]) + [
        dict(
            type='PackPoseInputs',
            meta_keys=cfg.meta_keys,
            pack_transformed=True,
        )
    ]
    dataset = DATASETS.build(
        dict(
            type='MpiiDataset',
            data_root=str(mpii_fixture),
            ann_file='annotations/mpii_train.json',
            data_prefix=dict(img='images/'),
            pipeline=pipeline,
        )
    )
    for i in range(4):
        sample = dataset[i]['data_samples']
        labels = sample.gt_instance_labels
        peak = np.stack(
            [
                labels.keypoint_x_labels[0].argmax(-1).numpy(),
                labels.keypoint_y_labels[0].argmax(-1).numpy(),
            ],
            -1,
        )
        kpts = sample.gt_instances.transformed_keypoints[0]
        # The random affine can push a visible joint just outside the input,
        # where the target's peak is clipped to the border: compare the rest.
        inside = ((kpts >= 0) & (kpts <= 255.5)).all(-1)
        w = (labels.keypoint_weights[0].numpy() > 0) & inside
        assert w.sum() >= 8
        np.testing.assert_allclose(peak[w] / 2.0, kpts[w], atol=0.5)


def test_scope_never_imports_mmpose_models():
    code = (
        'import sys\n'
        'import ausam_tasks\n'
        "assert 'mmpose' not in sys.modules, 'ausam_tasks imported mmpose'\n"
        'from mmengine.config import Config\n'
        'from mmengine.registry import MODELS, DATASETS, METRICS, '
        'init_default_scope\n'
        f'cfg = Config.fromfile({str(CONFIGS["ausam"])!r})\n'
        'import tasks.pose_simcc\n'
        'init_default_scope(cfg.default_scope)\n'
        'cfg.model.backbone.depth = 18\n'
        'cfg.model.head.in_channels = 512\n'
        'MODELS.build(cfg.model)\n'
        'METRICS.build(cfg.val_evaluator)\n'
        "DATASETS.get('MpiiDataset')\n"
        "assert 'mmpose.models' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, '-c', code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith('ok')


def test_bad_feature_map_size_is_reported():
    import torch

    from tasks.pose_simcc.models import SimCCHead

    head = SimCCHead(8, 16, (64, 64), (8, 8))
    with pytest.raises(ValueError, match='in_featuremap_size'):
        head((torch.zeros(1, 8, 4, 4),))

"""PCKh through mmpose's MpiiPCKAccuracy on the generated dataset, and the
table."""

import json

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from scipy.io import loadmat

from tasks.pose_simcc.evaluation import (
    PCKH_COLUMNS,
    format_pckh_table,
    pckh_row,
)

from .helpers import CONFIGS

GROUPS = {
    'Head PCK': [9],
    'Shoulder PCK': [12, 13],
    'Elbow PCK': [11, 14],
    'Wrist PCK': [10, 15],
    'Hip PCK': [2, 3],
    'Knee PCK': [1, 4],
    'Ankle PCK': [0, 5],
}


def _val_samples(root):
    from tasks.pose_simcc.registry import DATASETS

    cfg = Config.fromfile(str(CONFIGS['adam']))
    init_default_scope(cfg.default_scope)
    ds_cfg = cfg.val_dataloader.dataset
    ds_cfg.update(
        data_root=str(root),
        headbox_file=str(root / 'annotations' / 'mpii_gt_val.mat'),
        pipeline=[
            dict(type='LoadImage'),
            dict(type='PackPoseInputs', meta_keys=('sample_idx',)),
        ],
    )
    dataset = DATASETS.build(ds_cfg)
    return [dataset[i]['data_samples'] for i in range(len(dataset))]


def _evaluate(samples, shifts):
    from tasks.pose_simcc.registry import METRICS

    metric = METRICS.build(dict(type='MpiiPCKAccuracy'))
    outs = []
    for sample, shift in zip(samples, shifts):
        pred = InstanceData()
        # The metric adds 1 to predictions (0-based) to compare with MPII's
        # 1-based ground truth.
        pred.keypoints = sample.gt_instances.keypoints - 1 + shift
        sample.pred_instances = pred
        outs.append(sample.to_dict())
    metric.process([], outs)
    return metric.compute_metrics(metric.results)


def test_perfect_predictions_score_100(mpii_fixture):
    result = _evaluate(_val_samples(mpii_fixture), [np.zeros(2)] * 48)
    for key in list(GROUPS) + ['PCK', 'PCK@0.1']:
        assert result[key] == pytest.approx(100.0), key


def test_shifted_predictions_match_hand_computation(mpii_fixture):
    # Hand computation from the files alone: head size = 0.6 * head-box
    # diagonal; a joint is correct when shift / head size < thr.
    mat = loadmat(str(mpii_fixture / 'annotations' / 'mpii_gt_val.mat'))
    boxes = np.transpose(mat['headboxes_src'], (2, 0, 1))
    head = 0.6 * np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=1)
    visible = 1 - mat['jnt_missing'].T  # (N, 16)
    anns = json.loads(
        (mpii_fixture / 'annotations' / 'mpii_val.json').read_text()
    )
    assert np.array_equal(visible, np.array([a['joints_vis'] for a in anns]))
    fractions = np.resize([0.05, 0.3, 0.45, 0.6, 0.8, 0.2, 1.5], len(head))
    angles = np.linspace(0, 2 * np.pi, len(head), endpoint=False)
    shifts = (fractions * head)[:, None] * np.stack(
        [np.cos(angles), np.sin(angles)], 1
    )
    result = _evaluate(_val_samples(mpii_fixture), shifts)

    def pckh(thr):
        hit = (fractions < thr)[:, None] & (visible > 0)
        return 100.0 * hit.sum(0) / visible.sum(0)

    per_joint = pckh(0.5)
    for key, joints in GROUPS.items():
        assert result[key] == pytest.approx(per_joint[joints].mean()), key
    keep = [j for j in range(16) if j not in (6, 7)]  # not pelvis, thorax
    counts = visible.sum(0)[keep]
    assert result['PCK'] == pytest.approx(
        (per_joint[keep] * counts).sum() / counts.sum()
    )
    assert result['PCK@0.1'] == pytest.approx(
        (pckh(0.1)[keep] * counts).sum() / counts.sum(), abs=1e-4
    )
    assert 0 < result['PCK'] < 100


def test_pckh_table_has_the_paper_columns():
    metrics = {
        'Head PCK': 96.9,
        'Shoulder PCK': 95.7,
        'Elbow PCK': 89.4,
        'Wrist PCK': 84.8,
        'Hip PCK': 89.1,
        'Knee PCK': 85.7,
        'Ankle PCK': 81.3,
        'PCK': 89.5,
        'PCK@0.1': 35.0,
    }
    table = format_pckh_table(metrics, name='AUSAM')
    lines = table.splitlines()
    assert lines[0] == (
        '| method | Head | Shoulder | Elbow | Wrist | Hip | '
        'Knee | Ankle | Mean | Mean@0.1 |'
    )
    assert lines[2] == (
        '| AUSAM | 96.90 | 95.70 | 89.40 | 84.80 | 89.10 | '
        '85.70 | 81.30 | 89.50 | 35.00 |'
    )
    prefixed = {f'mpii/{k}': v for k, v in metrics.items()}
    assert pckh_row(prefixed)['Mean'] == 89.5
    two = format_pckh_table({'Adam': metrics, 'SAM': metrics})
    assert len(two.splitlines()) == 4
    assert list(PCKH_COLUMNS)[-2:] == ['Mean', 'Mean@0.1']
    with pytest.raises(KeyError, match='MpiiPCKAccuracy'):
        format_pckh_table({'PCK': 1.0})

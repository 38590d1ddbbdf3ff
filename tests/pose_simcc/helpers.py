"""Helpers: paths, and small configs built from the real pose configs (tiny
backbone, small input) so tests run in seconds."""

import copy
import json
from pathlib import Path

import pytest

from tools.data_root import ENV_VAR, mpii_sample

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / 'configs' / 'pose_simcc'
CONFIGS = {
    'adam': CONFIG_DIR / 'simcc_res50_adam_1xb64-210e_mpii-256x256.py',
    'sam': CONFIG_DIR / 'simcc_res50_sam_1xb64-210e_mpii-256x256.py',
    'ausam': CONFIG_DIR / 'simcc_res50_ausam-a0.5_1xb64-210e_mpii-256x256.py',
}


def small_config(
    name,
    data_root,
    work_dir,
    input_size=64,
    sigma=2.0,
    max_epochs=1,
    batch_size=16,
    flip=True,
    val=True,
):
    """The real config ``name`` with a TinyConvNet backbone at
    ``input_size``."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIGS[name]))
    size = (input_size, input_size)
    codec = dict(
        type='SimCCLabel', input_size=size, sigma=sigma, simcc_split_ratio=2.0
    )
    cfg.codec = codec
    cfg.model.codec = codec
    cfg.model.backbone = dict(type='TinyConvNet', channels=(16, 32, 64))
    cfg.model.head.update(
        in_channels=64,
        input_size=size,
        in_featuremap_size=(input_size // 8,) * 2,
    )
    cfg.model.test_cfg = dict(flip_test=flip)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.update(
            batch_size=batch_size, num_workers=0, persistent_workers=False
        )
        dl.dataset.data_root = str(data_root)
        if 'headbox_file' in dl.dataset:
            dl.dataset.headbox_file = str(
                Path(data_root) / 'annotations' / 'mpii_gt_val.mat'
            )
        for step in dl.dataset.pipeline:
            if step['type'] == 'TopdownAffine':
                step['input_size'] = size
            if step['type'] == 'GenerateTarget':
                step['encoder'] = copy.deepcopy(codec)
    cfg.train_cfg = dict(
        by_epoch=True,
        max_epochs=max_epochs,
        val_interval=max_epochs if val else 10**6,
    )
    # Short schedule: a brief warm-up, no decay.
    cfg.param_scheduler = [
        dict(type='LinearLR', begin=0, end=5, start_factor=0.1, by_epoch=False)
    ]
    cfg.default_hooks.logger.interval = 5
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=-1, save_last=False
    )
    cfg.work_dir = str(work_dir)
    cfg.randomness = dict(seed=0)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    if not val:
        cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    return cfg


def mpii_sample_or_skip():
    root = mpii_sample()
    ann = root / 'test_mpii.json'
    if not ann.is_file():
        pytest.skip(
            f'real MPII sample not found at {root} '
            f'(set {ENV_VAR} to the folder that holds mpii_sample/)'
        )
    return root, json.loads(ann.read_text())

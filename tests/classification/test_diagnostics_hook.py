"""SelectionDiagnosticsHook on the classification task: a tiny ResNet on
real CIFAR-10 images through a real config and Runner, with the batch
augmentation applied to the probe."""

import glob
import json
import math
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.runner import Runner

import tasks.classification  # noqa: F401
from tasks.classification.data_prep import extract_cifar10_jpg

CONFIG = (
    Path(__file__).resolve().parents[2]
    / 'configs/classification/resnet18_ausam-a0.5_1xb128_cifar10.py'
)


def make_cfg(root, work_dir, hooks):
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.net = dict(type='cifar_resnet', depth=8, width=4)
    cfg.model.data_preprocessor.resize_to = 16
    cfg.train_dataloader.update(
        batch_size=20, num_workers=0, persistent_workers=False
    )
    cfg.train_dataloader.dataset = dict(
        type='ImageFolder', data_root=str(root), pipeline=cfg.train_pipeline
    )
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.train_cfg.max_epochs = 2
    cfg.param_scheduler[0].update(T_max=2, end=2)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.custom_hooks = hooks
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'diagnostics_{Path(work_dir).name}'
    cfg.randomness = dict(seed=0)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    return cfg


def test_hook_on_real_cifar10_logs_and_leaves_training_unchanged(
    tmp_path, cifar10_archive
):
    root = extract_cifar10_jpg(
        tmp_path / 'cache', cifar10_archive, per_class=6
    )
    hook = dict(
        type='SelectionDiagnosticsHook',
        num_probe=16,
        num_draws=2,
        augment=True,
    )
    runner = Runner.from_cfg(make_cfg(root, tmp_path / 'diag', [hook]))
    runner.train()
    paths = glob.glob(str(tmp_path / 'diag/*/vis_data/scalars.json'))
    with open(paths[0]) as f:
        lines = [json.loads(x) for x in f if '"diag/' in x]
    assert [x['epoch'] for x in lines] == [1, 2]
    for key in ('dlp_spearman', 'adlp_spearman', 'err_adlp_eps'):
        v = lines[-1]['diag/' + key]
        assert math.isfinite(v) and -1 <= v <= 100, key
        assert 'diag/' + key in runner.message_hub.log_scalars
    assert lines[-1]['diag/adlp_scored_frac'] == 1.0  # epoch 1 scored all
    assert lines[-1]['diag/subset_size'] == 8
    assert 0 <= lines[-1]['diag/coverage_never_frac'] < 1
    # The probe's augmentation draws come from its own seeded stream.
    plain = Runner.from_cfg(make_cfg(root, tmp_path / 'plain', []))
    plain.train()
    for (k, a), b in zip(
        runner.model.state_dict().items(), plain.model.state_dict().values()
    ):
        assert torch.equal(a, b), k

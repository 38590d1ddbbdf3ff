"""Kill-and-resume is bit-identical with the shipped classification config
(batch augmentation on the device, AUSAM selection, shuffled sampler, data
loader workers), through the real Runner."""

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
CONFIG = CONFIGS / 'classification/resnet18_ausam-a0.5_1xb128_cifar10.py'
CPU_AUG = CONFIGS / '_base_/datasets/cifar10_bs128_cpu-aug.py'


@HOOKS.register_module()
class KillAfterEpoch(Hook):
    """Ends training after ``epoch`` epochs (the checkpoint is written),
    as a kill would."""

    priority = 'LOWEST'

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 >= self.epoch:
            runner.train_loop.stop_training = True


def run(cifar10_root, work_dir, kill_after=None, resume=False, aug='batch'):
    cfg = Config.fromfile(str(CONFIG))
    if aug == 'cpu':  # albumentations in the (non-persistent) workers
        base = Config.fromfile(str(CPU_AUG))
        cfg.model.data_preprocessor = base.data_preprocessor
        cfg.train_dataloader.persistent_workers = False
        cfg.train_dataloader.dataset.pipeline = base.train_pipeline
        cfg.val_dataloader.dataset.pipeline = base.test_pipeline
    cfg.model.net = dict(type='cifar_resnet', depth=8, width=4)
    cfg.train_cfg.max_epochs = 2
    cfg.param_scheduler[0].update(T_max=2, end=2)
    cfg.optim_wrapper.update(warmup_epochs=1)  # AUSAM after epoch 1
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].dataset.update(data_root=str(cifar10_root), download=False)
        cfg[key].batch_size = 4  # 20 images: 5 iterations per epoch
    cfg.train_dataloader.num_workers = 2  # persistent, as shipped
    cfg.val_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)  # two runs to compare: fix the seed
    cfg.resume = resume
    if kill_after:
        cfg.custom_hooks = list(cfg.custom_hooks) + [
            dict(type='KillAfterEpoch', epoch=kill_after)
        ]
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.parametrize(
    'aug', ['batch', pytest.param('cpu', marks=pytest.mark.slow)]
)
def test_killed_and_resumed_run_matches_the_uninterrupted_one(
    cifar10_root, tmp_path, aug
):
    full = run(cifar10_root, tmp_path / 'full', aug=aug)
    run(cifar10_root, tmp_path / 'half', kill_after=1, aug=aug)
    assert not (tmp_path / 'half' / 'epoch_2.pth').exists()
    resumed = run(cifar10_root, tmp_path / 'half', resume=True, aug=aug)
    preprocessor = resumed.model.data_preprocessor
    assert bool(preprocessor.batch_augment) == (aug == 'batch')
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    oa, ob = full.optim_wrapper, resumed.optim_wrapper
    assert oa.core.num_steps == ob.core.num_steps == 10
    count = oa.selection_counts()
    assert torch.equal(count, ob.selection_counts())
    idx = torch.arange(len(count))
    # NaN (never scored) compares equal too
    torch.testing.assert_close(
        oa.sample_scores(idx),
        ob.sample_scores(idx),
        rtol=0,
        atol=0,
        equal_nan=True,
    )
    # epoch 1 scored all 20 samples, epoch 2 trained on half of each batch
    assert int(count.sum()) == 20 + 10


def test_resume_is_exact_under_the_shipped_seed_setting(
    cifar10_root, tmp_path
):
    """randomness.seed=None as shipped, through tools/train.py: resuming
    from the uninterrupted run's own epoch_1.pth ends where it ended (the
    sampler shuffles with the checkpoint's seed, not the fresh run's)."""
    from ausam_tasks.tools import train as train_tool

    assert Config.fromfile(str(CONFIG)).randomness.seed is None
    leaf = tmp_path / 'leaf.py'
    leaf.write_text(
        f"_base_ = ['{CONFIG}']\n"
        "model = dict(net=dict(_delete_=True, type='cifar_resnet', depth=8, "
        'width=4, num_classes=10))\n'
    )
    opts = [
        'train_cfg.max_epochs=2',
        'param_scheduler.0.T_max=2',
        'param_scheduler.0.end=2',
        'optim_wrapper.warmup_epochs=1',
        'default_hooks.checkpoint.interval=1',
        'log_level=WARNING',
        *(
            f'{k}.{v}'
            for k in ('train_dataloader', 'val_dataloader')
            for v in (
                f'dataset.data_root={cifar10_root}',
                'dataset.download=False',
                'batch_size=4',
            )
        ),
        'train_dataloader.num_workers=2',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
    ]
    full = train_tool.main(
        [str(leaf), '--work-dir', str(tmp_path / 'full'), '--cfg-options']
        + opts
    )
    resumed = train_tool.main(
        [
            str(leaf),
            '--work-dir',
            str(tmp_path / 'resumed'),
            '--resume',
            str(tmp_path / 'full' / 'epoch_1.pth'),
            '--cfg-options',
        ]
        + opts
    )
    assert resumed.seed == full.seed
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(
        full.optim_wrapper.selection_counts(),
        resumed.optim_wrapper.selection_counts(),
    )

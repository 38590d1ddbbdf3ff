"""Every shipped pose config trains two iterations through tools/train.py's
own code path, and tools/test.py scores the checkpoint with MPII's PCKh. The
override is the cheapest that keeps each config's optimizer wrapper, data
pipeline and hooks: a leaf config with a TinyConvNet backbone at 64x64, and
--cfg-options that shrink the pipeline's input size in place."""

from pathlib import Path

import pytest
from mmengine.config import Config

from ausam_tasks.tools import test as test_tool
from ausam_tasks.tools import train as train_tool

from .helpers import CONFIG_DIR

CONFIGS = sorted(CONFIG_DIR.glob('*.py'))
SIZE = 64
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def leaf_config(path: Path, tmp_path: Path) -> Path:
    leaf = tmp_path / f'{path.stem}_tiny.py'
    leaf.write_text(
        f"_base_ = ['{path}']\n"
        f'model = dict(\n'
        f"    backbone=dict(_delete_=True, type='TinyConvNet',\n"
        f'                  channels=(16, 32, 64)),\n'
        f'    head=dict(in_channels=64, input_size=({SIZE}, {SIZE}),\n'
        f'              in_featuremap_size=({SIZE // 8}, {SIZE // 8})),\n'
        f'    codec=dict(input_size=({SIZE}, {SIZE})))\n'
    )
    return leaf


def shrink_options(path: Path, data_root: Path) -> list:
    """--cfg-options: the fixture's data, 64x64 in the config's own
    pipeline steps, batch 16 of 32 training samples (2 iterations)."""
    cfg = Config.fromfile(str(path))
    size = f'({SIZE},{SIZE})'
    options = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1']
    options += ['log_level=WARNING', 'train_dataloader.dataset.indices=32']
    for key in LOADERS:
        ds = cfg[key].dataset
        options += [
            f'{key}.batch_size=16',
            f'{key}.num_workers=0',
            f'{key}.persistent_workers=False',
            f'{key}.dataset.data_root={data_root}',
        ]
        if 'headbox_file' in ds:
            options.append(
                f'{key}.dataset.headbox_file='
                f'{data_root}/annotations/mpii_gt_val.mat'
            )
        for i, step in enumerate(ds.pipeline):
            if step['type'] == 'TopdownAffine':
                options.append(f'{key}.dataset.pipeline.{i}.input_size={size}')
            if step['type'] == 'GenerateTarget':
                options.append(
                    f'{key}.dataset.pipeline.{i}.encoder.input_size={size}'
                )
    return options


@pytest.mark.parametrize('path', CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_pose_config_trains_and_tests_through_the_cli(
    path, mpii_fixture, tmp_path
):
    leaf = leaf_config(path, tmp_path)
    options = shrink_options(path, mpii_fixture)
    work = tmp_path / 'w'
    argv = [str(leaf), '--work-dir', str(work), '--cfg-options', *options]
    runner = train_tool.main(argv)
    assert runner.iter == 2
    wrapper = Config.fromfile(str(path)).optim_wrapper.get('type')
    assert type(runner.optim_wrapper).__name__ == (wrapper or 'OptimWrapper')
    metrics = test_tool.main(
        [str(leaf), str(work / 'epoch_1.pth'), '--work-dir', str(work)]
        + ['--cfg-options', *options]
    )
    # MPII's PCKh (head-normalised): the mean and each joint group.
    assert 0.0 <= metrics['PCK'] <= 100.0
    assert {'Head PCK', 'Wrist PCK', 'Ankle PCK'} <= set(metrics)

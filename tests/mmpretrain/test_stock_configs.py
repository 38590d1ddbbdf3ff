"""Every shipped mmpretrain config trains an epoch through mmpretrain's own
tools/train.py on a tiny image folder; ESAM by the same switch."""

import json

import pytest
import torch

from ausam_tasks.engine.checkpoint import load_checkpoint_file

from .conftest import CONFIGS, image_folder_config, run_tool

SHIPPED = sorted(p.name for p in CONFIGS.glob('*.py'))


def logged(work_dir):
    """The per-iteration training scalars mmengine wrote."""
    (path,) = work_dir.glob('*/vis_data/scalars.json')
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if 'loss' in r], [
        r for r in rows if 'accuracy/top1' in r
    ]


def train(config, folder, tmp_path, *flags, batch_size=8, **options):
    cfg = image_folder_config(
        config, folder, tmp_path / 'cfg.py', batch_size, **options
    )
    work = tmp_path / 'work'
    run_tool(
        'train',
        cfg,
        '--work-dir',
        work,
        '--no-persistent-workers',
        '--no-pin-memory',
        *flags,
    )
    return work


def test_every_shipped_config_is_tested():
    assert SHIPPED == [
        'deit-tiny_ausam-a0.5_4xb256_in1k.py',
        'resnet18_ausam-a0.5_8xb16_cifar10.py',
        'resnet18_looksam-k5_8xb16_cifar10.py',
        'resnet18_sam_8xb16_cifar10.py',
    ]


@pytest.mark.parametrize(
    'name, sam_frac',
    [
        ('resnet18_ausam-a0.5_8xb16_cifar10.py', [1.0, 1.0]),  # init epoch
        ('resnet18_sam_8xb16_cifar10.py', [1.0, 1.0]),
        ('resnet18_looksam-k5_8xb16_cifar10.py', [1.0, 0.0]),
    ],
)
def test_stock_resnet18_trains_an_epoch(
    name, sam_frac, image_folder, tmp_path
):
    work = train(CONFIGS / name, image_folder, tmp_path)
    steps, val = logged(work)
    assert [r['sam_frac'] for r in steps] == sam_frac
    assert all(torch.isfinite(torch.tensor(r['loss'])) for r in steps)
    assert len(val) == 1  # the stock val loop scored the epoch
    ckpt = load_checkpoint_file(str(work / 'epoch_1.pth'))
    assert ckpt['meta']['epoch'] == 1


def test_esam_by_the_same_switch(image_folder, tmp_path):
    work = train(
        CONFIGS / 'resnet18_sam_8xb16_cifar10.py',
        image_folder,
        tmp_path,
        '--cfg-options',
        'optim_wrapper.sam.type=ESAMOptimWrapper',
        'optim_wrapper.sam.beta=0.6',
        'optim_wrapper.sam.gamma=0.5',
    )
    steps, val = logged(work)
    assert len(steps) == 2 and len(val) == 1
    assert all(0 < r['sam_frac'] <= 1 for r in steps)


def test_amp_flag_of_mmpretrain_maps_to_the_wrappers_dtype(
    image_folder, tmp_path
):
    # mmpretrain's --amp sets optim_wrapper.type='AmpOptimWrapper'; the
    # constructor gives the SAM wrapper bf16 autocast on a CPU.
    work = train(
        CONFIGS / 'resnet18_sam_8xb16_cifar10.py',
        image_folder,
        tmp_path,
        '--amp',
    )
    steps, _ = logged(work)
    assert [r['sam_frac'] for r in steps] == [1.0, 1.0]
    (log,) = work.glob('*/*.log')
    assert 'the SAM-family wrapper runs bfloat16 autocast' in log.read_text()


def test_deit_with_mixup_cutmix_and_label_smoothing_trains(
    image_folder, tmp_path
):
    work = train(
        CONFIGS / 'deit-tiny_ausam-a0.5_4xb256_in1k.py',
        image_folder,
        tmp_path,
        batch_size=8,
        # one step; the stock schedule's warm-up needs 20 epochs
        **{'train_dataloader.dataset.indices': 8, 'param_scheduler': []},
    )
    steps, val = logged(work)
    assert [r['sam_frac'] for r in steps] == [1.0]
    assert len(val) == 1

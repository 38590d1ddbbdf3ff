"""Every shipped image-classification config (classification, QAT, study)
trains two iterations through tools/train.py's own code path on a tiny image
folder, as a user runs it; one config of each optimizer wrapper setting also
with ``--amp``. The override is the cheapest that keeps the config's
optimizer wrapper, data pipeline and hooks: a leaf config inheriting it with
a tiny network (and small inputs)."""

from pathlib import Path

import pytest
import torch

from ausam_tasks.engine import SAMOptimWrapper
from ausam_tasks.tools import train as train_tool
from tasks.classification.data_prep import (
    synthetic_images,
    write_cifar_pickles,
    write_image_folder,
)

REPO = Path(__file__).resolve().parents[1]
GROUPS = ('classification', 'qat', 'study')
CONFIGS = sorted(
    p for g in GROUPS for p in (REPO / 'configs' / g).glob('*.py')
)
TINY_NET = (
    "dict(_delete_=True, type='cifar_resnet', depth=8, width=4, "
    'num_classes=10)'
)


def wrapper_setting(path):
    """What makes one method differ from another: the wrapper type and,
    for AUSAM, its selector."""
    from mmengine.config import Config

    ow = Config.fromfile(str(path)).optim_wrapper
    return (ow.get('type', 'OptimWrapper'), ow.get('selector'))


def cfg_dtype(path):
    from mmengine.config import Config

    return Config.fromfile(str(path)).optim_wrapper.get('dtype')


def _first_of_each_setting():
    seen, first = set(), set()
    for p in CONFIGS:
        key = wrapper_setting(p)
        if key not in seen:
            seen.add(key)
            first.add(p)
    return first


WITH_AMP = _first_of_each_setting()
CASES = [(p, False) for p in CONFIGS] + [(p, True) for p in sorted(WITH_AMP)]


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """2 classes x (4 training + 2 held-out) 32x32 images: batch 4 gives
    two iterations."""
    root = tmp_path_factory.mktemp('images')
    imgs, labels = synthetic_images(24, 2, seed=5)
    tr = [i for c in (0, 1) for i in (labels == c).nonzero()[0][:4]]
    va = [i for c in (0, 1) for i in (labels == c).nonzero()[0][4:6]]
    write_image_folder(root / 'train', imgs[tr], labels[tr], ext='.png')
    write_image_folder(root / 'val', imgs[va], labels[va], ext='.png')
    write_cifar_pickles(
        root / 'pickles', imgs[tr], labels[tr], 'cifar10', imgs[va], labels[va]
    )
    return root


def leaf_config(path, tmp_path):
    from mmengine.config import Config

    model = Config.fromfile(str(path)).model
    net = f'net={TINY_NET}'
    if model.type == 'QuantizedClassifier':
        net = f'model=dict({net}), float_checkpoint=None'
    if model.get('compile'):
        # Inductor on a CPU takes a minute: capture the graphs only, and
        # mark the CUDA-graph steps as on the device.
        net += (
            ", compile=dict(_delete_=True, backend='aot_eager', "
            'dynamic=False, mark_steps=True)'
        )
    leaf = tmp_path / f'{path.stem}_tiny.py'
    leaf.write_text(f"_base_ = ['{path}']\nmodel = dict({net})\n")
    return leaf


def data_args(path, folder):
    """--image-folder, except for the fast path's on-device CIFAR pickles,
    which read the same images as CIFAR pickles: (flags, --cfg-options)."""
    if 'fast' not in path.stem:
        return ['--image-folder', str(folder)], []
    return [], [
        f'{k}.dataset.data_root={folder / "pickles"}'
        for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]


@pytest.mark.parametrize(
    'path,amp',
    CASES,
    ids=[f'{p.stem}{"-amp" if a else ""}' for p, a in CASES],
)
def test_shipped_config_trains_through_the_cli(path, amp, folder, tmp_path):
    flags, options = data_args(path, folder)
    argv = [
        str(leaf_config(path, tmp_path)),
        *flags,
        '--work-dir',
        str(tmp_path / 'w'),
        *(['--amp'] if amp else []),
        '--cfg-options',
        'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1',
        'model.data_preprocessor.resize_to=16',
        'log_level=WARNING',
        *options,
        *(
            f'{k}.{v}'
            for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
            for v in (
                'batch_size=4',
                'num_workers=0',
                'persistent_workers=False',
            )
        ),
    ]
    runner = train_tool.main(argv)
    kind, _ = wrapper_setting(path)
    ow = runner.optim_wrapper
    assert runner.iter == 2
    assert type(ow).__name__ == (
        'AutocastOptimWrapper' if amp and kind == 'OptimWrapper' else kind
    )
    if isinstance(ow, SAMOptimWrapper):
        dtype = cfg_dtype(path)
        assert ow.cast_dtype == (torch.bfloat16 if amp or dtype else None)
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert torch.isfinite(torch.tensor(loss))
    assert (tmp_path / 'w' / 'epoch_1.pth').is_file()

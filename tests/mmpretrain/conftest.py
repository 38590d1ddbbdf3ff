"""Tiny image folders, stock mmpretrain configs pointed at them, and
mmpretrain's own tools run in-process."""

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

mmpretrain = pytest.importorskip('mmpretrain')

from mmengine.config import Config  # noqa: E402

from tasks.classification.data_prep import (  # noqa: E402
    synthetic_images,
    write_image_folder,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs' / 'mmpretrain'
STOCK_RESNET18 = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'
NUM_CLASSES = 4


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory):
    """DIR/train (16 images) and DIR/val (8), 32x32, four class folders."""
    root = tmp_path_factory.mktemp('cifar_folder')
    for part, num, seed in (('train', 16, 0), ('val', 8, 1)):
        images, _ = synthetic_images(num, NUM_CLASSES, seed=seed)
        labels = np.arange(num) % NUM_CLASSES
        write_image_folder(root / part, images, labels)
    return root


def _with_loader(pipeline):
    """An image-folder dataset yields file paths: load them first."""
    pipeline = [dict(p) for p in pipeline]
    if not pipeline or pipeline[0].get('type') != 'LoadImageFromFile':
        pipeline.insert(0, dict(type='LoadImageFromFile'))
    return pipeline


def image_folder_config(config, folder, out, batch_size=8, **options):
    """``config`` (a path or ``mmpretrain::`` name) with its datasets
    replaced by mmpretrain's CustomDataset on ``folder``/train and /val
    (the pipelines stay), one epoch, a log line per iteration; written to
    ``out`` and returned as a path."""
    if str(config).startswith('mmpretrain::'):
        # Config.fromfile takes a path; the package syntax works in _base_.
        stub = Path(out).with_suffix('.base.py')
        stub.write_text(f'_base_ = [{str(config)!r}]\n')
        config = stub
    cfg = Config.fromfile(str(config))
    for key, part in (
        ('train_dataloader', 'train'),
        ('val_dataloader', 'val'),
        ('test_dataloader', 'val'),
    ):
        loader = cfg[key]
        loader.update(batch_size=batch_size, num_workers=0)
        loader.persistent_workers = False
        loader.dataset = dict(
            type='CustomDataset',
            data_root=str(Path(folder) / part),
            pipeline=_with_loader(loader.dataset.pipeline),
        )
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.logger.interval = 1
    cfg.merge_from_dict(options)
    cfg.dump(str(out))
    return Path(out)


def run_tool(name, *argv):
    """mmpretrain's own ``tools/<name>.py`` (installed with the package),
    run as ``python tools/<name>.py ARGV``."""
    path = Path(mmpretrain.__file__).parent / '.mim' / 'tools' / f'{name}.py'
    main = runpy.run_path(str(path))['main']
    old = sys.argv
    sys.argv = [str(path), *map(str, argv)]
    try:
        return main()
    finally:
        sys.argv = old

"""A new user's first commands: offline download, an image folder instead
of CIFAR, switching an AUSAM config back to SGD."""

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets.utils as tv_utils
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from torch import nn

from ausam_tasks.tools import test as test_tool
from ausam_tasks.tools import train as train_tool
from tasks.classification.data_prep import (
    synthetic_images,
    write_image_folder,
)

CONFIG = str(
    Path(__file__).resolve().parents[2]
    / 'configs/classification/resnet18_ausam-a0.5_1xb128_cifar10.py'
)


def test_offline_download_says_what_to_do(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError('[Errno -3] Temporary failure')

    monkeypatch.setattr(tv_utils, 'download_and_extract_archive', offline)
    with pytest.raises(RuntimeError) as e:
        train_tool.main(
            [
                CONFIG,
                '--work-dir',
                str(tmp_path / 'w'),
                '--cfg-options',
                f'train_dataloader.dataset.data_root={tmp_path}',
            ]
        )
    msg = str(e.value)
    assert 'URLError' in msg
    assert f'{tmp_path.resolve()}/cifar-10-batches-py' in msg
    assert '--image-folder DIR' in msg


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('images')
    imgs, labels = synthetic_images(24, 3, seed=4)
    names = ['ant', 'bee', 'cat']
    write_image_folder(root / 'train', imgs[:16], labels[:16], classes=names)
    write_image_folder(root / 'val', imgs[16:], labels[16:], classes=names)
    return root


# One short epoch in the main process (the batch size set per test).
SMALL = [
    'train_cfg.max_epochs=1',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0',
    'val_dataloader.persistent_workers=False',
]


def train_small(config, folder, work, *options):
    """tools/train.py: ``config`` one short epoch on the image folder."""
    return train_tool.main(
        [
            str(config),
            '--image-folder',
            str(folder),
            '--work-dir',
            str(work),
            '--cfg-options',
            *SMALL,
            *options,
        ]
    )


def test_any_classification_config_trains_on_an_image_folder(folder, tmp_path):
    work = str(tmp_path / 'w')
    runner = train_small(CONFIG, folder, work, 'train_dataloader.batch_size=8')
    ds = runner.train_dataloader.dataset
    assert type(ds).__name__ == 'ImageFolder' and len(ds) == 16
    assert ds.metainfo['classes'] == ('ant', 'bee', 'cat')
    assert runner.model.net.fc.out_features == 3
    assert runner.optim_wrapper.core.num_steps == 2
    metrics = test_tool.main(
        [
            CONFIG,
            f'{work}/epoch_1.pth',
            '--image-folder',
            str(folder),
            '--work-dir',
            work,
            '--cfg-options',
            *SMALL[3:],  # the val loader's
        ]
    )
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_image_folder_layout_is_checked(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match='DIR/train/<class>'):
        train_tool.main([CONFIG, '--image-folder', str(folder / 'train')])


def test_switching_an_ausam_config_to_sgd(tmp_path):
    with pytest.raises(ValueError) as e:
        train_tool.main(
            [CONFIG, '--cfg-options', 'optim_wrapper.type=OptimWrapper']
        )
    assert "still sets ['alpha', 'init_epochs', 'rho'" in str(e.value)
    recipe = str(e.value).rsplit('--cfg-options ', 1)[1].split()
    assert recipe[0] == 'optim_wrapper._delete_=True'
    args = train_tool.parse_args([CONFIG, '--cfg-options', *recipe])
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(args.cfg_options)
    cfg = train_tool.merge_args(cfg, args)
    assert cfg.optim_wrapper == dict(
        type='OptimWrapper',
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
    )
    sgd = Config.fromfile(CONFIG.replace('ausam-a0.5', 'sgd'))
    assert cfg.optim_wrapper == sgd.optim_wrapper  # the sibling config's
    ow = build_optim_wrapper(nn.Linear(2, 2), cfg.optim_wrapper)
    assert type(ow) is OptimWrapper
    assert np.isclose(ow.optimizer.defaults['momentum'], 0.9)


def test_switching_an_ausam_config_to_looksam():
    """The same merge trap between two SAM-family methods: named, with the
    recipe for the new type, before the Runner starts."""
    with pytest.raises(ValueError) as e:
        train_tool.main(
            [CONFIG, '--cfg-options', 'optim_wrapper.type=LookSAMOptimWrapper']
        )
    msg = str(e.value)
    assert "still sets ['init_epochs', 's_max', 's_min'" in msg
    assert 'optim_wrapper.type=LookSAMOptimWrapper' in msg
    recipe = msg.rsplit('--cfg-options ', 1)[1].split() + ['optim_wrapper.k=5']
    args = train_tool.parse_args([CONFIG, '--cfg-options', *recipe])
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(args.cfg_options)
    ow = build_optim_wrapper(nn.Linear(2, 2), cfg.optim_wrapper)
    assert type(ow).__name__ == 'LookSAMOptimWrapper' and ow.core.k == 5


def test_the_readme_accumulation_command_trains(folder, tmp_path):
    """README's `--cfg-options train_dataloader.batch_size=32
    optim_wrapper.accumulative_counts=4` on the SAM config (here batch 4 x
    4 on the 16 folder images: one update per epoch)."""
    sam = CONFIG.replace('ausam-a0.5', 'sam')
    runner = train_small(
        sam,
        folder,
        tmp_path / 'w',
        'train_dataloader.batch_size=4',
        'optim_wrapper.accumulative_counts=4',
    )
    assert runner.iter == 4 and runner.optim_wrapper.core.num_steps == 1


def docs_infobatch_snippet(base: str) -> str:
    """docs/methods.md's InfoBatch config, its _base_ put at ``base``."""
    docs = (Path(CONFIG).parents[2] / 'docs' / 'methods.md').read_text()
    (block,) = [
        b.split('\n', 1)[1]
        for b in docs.split('```python')[1:]
        if 'InfoBatchSampler' in b.split('```')[0]
    ]
    block = block.split('```')[0]
    assert "_base_ = ['./resnet18_sgd_1xb128_cifar10.py']" in block
    return block.replace(
        './resnet18_sgd_1xb128_cifar10.py', str(Path(CONFIG).with_name(base))
    )


def test_the_docs_infobatch_snippet_trains(folder, tmp_path):
    """As written on the SGD config: SAM+Info trains (16 images in batches
    of 4; epoch 1 has no scores yet, so all 4 batches). On the AUSAM config
    the merge is named when the config is read, with the config-file
    recipe, which then passes."""
    path = tmp_path / 'sam_info.py'
    path.write_text(docs_infobatch_snippet('resnet18_sgd_1xb128_cifar10.py'))
    runner = train_small(
        path, folder, tmp_path / 'w', 'train_dataloader.batch_size=4'
    )
    assert runner.iter == 4 and runner.optim_wrapper.infobatch_pass == 'second'
    text = docs_infobatch_snippet('resnet18_ausam-a0.5_1xb128_cifar10.py')
    path.write_text(text)
    with pytest.raises(ValueError) as e:
        train_tool.main([str(path)])
    msg = str(e.value)
    assert "still sets ['alpha', 'init_epochs'" in msg and '_base_' in msg
    recipe = msg.split('in a config file, ', 1)[1].split(';', 1)[0]
    fixed = text.replace(
        "optim_wrapper = dict(\n    type='SAMOptimWrapper', rho=0.05,",
        f'{recipe}\noptim_wrapper.update(rho=0.05,',
    )
    assert fixed != text
    path.write_text(fixed)
    args = train_tool.parse_args([str(path)])
    cfg = train_tool.merge_args(Config.fromfile(str(path)), args)
    assert cfg.optim_wrapper.infobatch_pass == 'second'
    assert 'alpha' not in cfg.optim_wrapper


def test_per_sample_settings_on_mmengines_wrapper_name_plain(tmp_path):
    """micro_batch_size (or infobatch_pass) on the SGD config's
    OptimWrapper: the error names PlainOptimWrapper, which then takes it."""
    sgd = CONFIG.replace('ausam-a0.5', 'sgd')
    option = 'optim_wrapper.micro_batch_size=8'
    with pytest.raises(ValueError, match="type='PlainOptimWrapper'"):
        train_tool.main([sgd, '--cfg-options', option])
    fix = [option, 'optim_wrapper.type=PlainOptimWrapper']
    args = train_tool.parse_args([sgd, '--cfg-options', *fix])
    cfg = Config.fromfile(sgd)
    cfg.merge_from_dict(args.cfg_options)
    cfg = train_tool.merge_args(cfg, args)
    ow = build_optim_wrapper(nn.Linear(2, 2), cfg.optim_wrapper)
    assert type(ow).__name__ == 'PlainOptimWrapper'
    assert ow.micro_batch_size == 8

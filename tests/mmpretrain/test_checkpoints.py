"""A checkpoint trained with the switch is a stock checkpoint: the keys of
the unmodified config's model, scored by this project's tools/test.py on
the unmodified config, and (exported weights-only) by mmpretrain's own
tools/test.py; a resume continues bit-identically."""

import json
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from ausam_tasks.engine.checkpoint import load_checkpoint_file
from ausam_tasks.tools.export_weights import export_weights
from ausam_tasks.tools.test import main as project_test

from .conftest import CONFIGS, STOCK_RESNET18, image_folder_config, run_tool

AUSAM = CONFIGS / 'resnet18_ausam-a0.5_8xb16_cifar10.py'


@pytest.fixture(scope='module')
def trained(image_folder, tmp_path_factory):
    """The AUSAM config trained one epoch by mmpretrain's tools/train.py."""
    tmp = tmp_path_factory.mktemp('trained')
    cfg = image_folder_config(AUSAM, image_folder, tmp / 'cfg.py')
    run_tool(
        'train', cfg, '--work-dir', tmp / 'work', '--no-persistent-workers'
    )
    return tmp / 'work' / 'epoch_1.pth'


@pytest.fixture
def stock_cfg(image_folder, tmp_path):
    """The unmodified stock config, on the same image folder."""
    return image_folder_config(STOCK_RESNET18, image_folder, tmp_path / 's.py')


def test_state_dict_keys_are_the_stock_models(trained, stock_cfg):
    cfg = Config.fromfile(str(stock_cfg))
    assert cfg.model.type == 'ImageClassifier' and 'custom_imports' not in cfg
    stock = MODELS.build(cfg.model).state_dict()
    state = load_checkpoint_file(str(trained))['state_dict']
    assert list(state) == list(stock)
    assert all(state[k].shape == v.shape for k, v in stock.items())


def test_both_test_tools_score_it_on_the_unmodified_config(
    trained, stock_cfg, tmp_path
):
    ours = project_test(
        [str(stock_cfg), str(trained), '--work-dir', str(tmp_path / 'a')]
    )
    weights = export_weights(str(trained), str(tmp_path / 'weights.pth'))
    out = tmp_path / 'metrics.json'
    run_tool(
        'test',
        stock_cfg,
        weights,
        '--work-dir',
        tmp_path / 'b',
        '--out',
        out,
        '--out-item',
        'metrics',
    )
    theirs = json.loads(out.read_text())
    assert set(theirs) == set(ours) == {'accuracy/top1'}
    assert theirs['accuracy/top1'] == pytest.approx(ours['accuracy/top1'])


def _weights_only_load(path):
    """torch.load(weights_only=True) in a fresh interpreter, where nothing
    of this project has widened the allow-list."""
    return subprocess.run(
        [
            sys.executable,
            '-c',
            'import sys, torch; '
            'torch.load(sys.argv[1], map_location="cpu", weights_only=True)',
            str(path),
        ],
        capture_output=True,
        text=True,
    )


def test_export_loads_where_the_training_checkpoint_cannot(trained, tmp_path):
    weights = export_weights(str(trained), str(tmp_path / 'w.pth'), True)
    assert _weights_only_load(weights).returncode == 0
    refused = _weights_only_load(trained)
    assert refused.returncode != 0 and 'Weights only load' in refused.stderr
    out = torch.load(weights, weights_only=True)
    ckpt = load_checkpoint_file(str(trained))
    assert out['meta']['epoch'] == 1 and set(out) == {'state_dict', 'meta'}
    for key, value in ckpt['state_dict'].items():
        assert torch.equal(out['state_dict'][key], value), key


def test_resume_is_bit_identical(image_folder, tmp_path):
    """Two epochs straight vs one, then a resume through mmpretrain's
    --resume: the same weights and the same AUSAM state (score table,
    selection stream). A fixed toy: seed 0, no random transforms (the
    stock pipeline's augmentations draw from global streams that a resume
    re-seeds)."""
    options = {
        'randomness.seed': 0,
        'train_dataloader.dataset.pipeline': [
            dict(type='LoadImageFromFile'),
            dict(type='PackInputs'),
        ],
    }
    runs = {}
    for name, epochs in (('straight', 2), ('first', 1)):
        cfg = image_folder_config(
            AUSAM,
            image_folder,
            tmp_path / f'{name}.py',
            **options,
            **{'train_cfg.max_epochs': epochs},
        )
        run_tool('train', cfg, '--work-dir', tmp_path / name)
        runs[name] = cfg
    run_tool(
        'train',
        runs['straight'],
        '--work-dir',
        tmp_path / 'resumed',
        '--resume',
        tmp_path / 'first' / 'epoch_1.pth',
    )
    a = load_checkpoint_file(str(tmp_path / 'straight' / 'epoch_2.pth'))
    b = load_checkpoint_file(str(tmp_path / 'resumed' / 'epoch_2.pth'))
    for key, value in a['state_dict'].items():
        assert torch.equal(b['state_dict'][key], value), key
    sa = a['optimizer']['sharpness_aware']
    sb = b['optimizer']['sharpness_aware']
    assert (sa['num_steps'], sa['seed']) == (sb['num_steps'], sb['seed'])
    assert sa['num_steps'] == 4 and sa['scores']['count'].sum() > 0
    for key in ('value', 'count'):
        assert torch.equal(sa['scores'][key], sb['scores'][key]), key
    for i, state in a['optimizer']['state'].items():
        mb = b['optimizer']['state'][i]['momentum_buffer']
        assert torch.equal(state['momentum_buffer'], mb), i

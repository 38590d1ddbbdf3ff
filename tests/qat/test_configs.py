"""Every QAT config builds and trains a few iterations from a float checkpoint
(tiny generated CIFAR-10 data, sizes overridden here)."""

import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import ausam_tasks  # noqa: F401
import tasks.classification  # noqa: F401
from tasks.classification.data_prep import (
    synthetic_images,
    write_cifar_pickles,
)
from tasks.qat import QuantConv2d, is_calibrated, quantizers
from tasks.qat.registry import MODELS

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'qat'
QAT_CONFIGS = sorted(p.name for p in CONFIG_DIR.glob('*_w4a4_*.py'))


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('cifar10')
    imgs, labels = synthetic_images(8, 10, seed=5)
    write_cifar_pickles(
        root, imgs[:6], labels[:6], 'cifar10', imgs[6:], labels[6:]
    )
    return root


def _small(cfg, root, work_dir):
    cfg.work_dir = str(work_dir)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[key]
        dl.batch_size = 3
        dl.num_workers = 0
        dl.persistent_workers = False
        dl.dataset.data_root = str(root)
        dl.dataset.download = False
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1)  # 6 images: 2 iters
    cfg.param_scheduler = []
    for hook in cfg.custom_hooks:
        if hook['type'] == 'QATCalibrationHook':
            hook['num_batches'] = 2
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.randomness = dict(seed=0)
    # Batches of 2-3 images from a random-init float model: 4-bit activations
    # can leave a BN channel with ~zero batch variance, which amplifies the
    # gradient ~300x per layer. Real batches (128) do not need this.
    cfg.optim_wrapper.clip_grad = dict(max_norm=5.0)
    if cfg.optim_wrapper.type == 'AUSAMOptimWrapper':
        cfg.optim_wrapper.init_epochs = 0  # select subsets from the start
    return cfg


def _float_checkpoint(cfg, path):
    torch.manual_seed(0)
    float_cfg = copy.deepcopy(cfg.model.model)
    float_cfg['data_preprocessor'] = cfg.model.data_preprocessor
    model = MODELS.build(float_cfg)
    torch.save({'state_dict': model.state_dict()}, path)
    return model


def test_configs_calibrate_before_training():
    cfg = Config.fromfile(CONFIG_DIR / QAT_CONFIGS[0])
    assert 'QATCalibrationHook' in [h['type'] for h in cfg.custom_hooks]


def test_there_are_six_qat_configs():
    assert len(QAT_CONFIGS) == 6
    for arch in ('resnet18', 'mobilenet-v1'):
        for opt in ('sgd', 'sam', 'ausam-a0.5'):
            assert f'{arch}_w4a4_{opt}_1xb128_cifar10.py' in QAT_CONFIGS


@pytest.mark.parametrize('name', QAT_CONFIGS)
def test_config_trains_from_float_checkpoint(name, cifar_root, tmp_path):
    cfg = _small(
        Config.fromfile(CONFIG_DIR / name), cifar_root, tmp_path / 'work'
    )
    ckpt = tmp_path / 'float.pth'
    float_model = _float_checkpoint(cfg, ckpt)
    cfg.model.float_checkpoint = str(ckpt)
    runner = Runner.from_cfg(cfg)
    model = runner.model
    # the float weights were loaded before quantization
    conv = next(m for m in model.modules() if isinstance(m, QuantConv2d))
    float_conv = next(
        m for m in float_model.modules() if isinstance(m, torch.nn.Conv2d)
    )
    assert torch.equal(conv.weight, float_conv.weight)
    assert not is_calibrated(model)
    before = conv.weight.detach().clone()
    runner.train()
    assert is_calibrated(model)
    assert runner.iter == 2
    assert not torch.equal(conv.weight, before)
    saved = torch.load(tmp_path / 'work' / 'epoch_1.pth', weights_only=False)
    assert any('input_quantizer.max_val' in k for k in saved['state_dict'])


def test_qat_checkpoint_resumes_without_recalibrating(cifar_root, tmp_path):
    name = 'resnet18_w4a4_sam_1xb128_cifar10.py'
    cfg = _small(
        Config.fromfile(CONFIG_DIR / name), cifar_root, tmp_path / 'a'
    )
    ckpt = tmp_path / 'float.pth'
    _float_checkpoint(cfg, ckpt)
    cfg.model.float_checkpoint = str(ckpt)
    first = Runner.from_cfg(copy.deepcopy(cfg))
    first.train()
    ranges = [
        q.max_val.clone()
        for q in quantizers(first.model)
        if hasattr(q, 'max_val')
    ]

    cfg2 = copy.deepcopy(cfg)
    cfg2.work_dir = str(tmp_path / 'b')
    cfg2.model.float_checkpoint = None
    cfg2.load_from = str(tmp_path / 'a' / 'epoch_1.pth')
    cfg2.train_cfg = dict(by_epoch=True, max_epochs=1)
    cfg2.optim_wrapper.optimizer.lr = 0.0  # only the loading is compared
    second = Runner.from_cfg(cfg2)
    second.load_or_resume()
    assert is_calibrated(second.model)
    for a, b in zip(
        ranges,
        [q.max_val for q in quantizers(second.model) if hasattr(q, 'max_val')],
    ):
        assert torch.equal(a, b)


def test_missing_float_checkpoint_names_the_file(tmp_path):
    cfg = Config.fromfile(CONFIG_DIR / 'resnet18_w4a4_sgd_1xb128_cifar10.py')
    cfg.model.float_checkpoint = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        MODELS.build(cfg.model)


def test_mobilenet_float_config_builds_the_float_model_the_qat_configs_load():
    cfg = Config.fromfile(
        CONFIG_DIR / 'mobilenet-v1_float_sgd_1xb128_cifar10.py'
    )
    qat = Config.fromfile(
        CONFIG_DIR / 'mobilenet-v1_w4a4_sgd_1xb128_cifar10.py'
    )
    float_model = MODELS.build(cfg.model)
    qat.model.float_checkpoint = None
    qat_model = MODELS.build(qat.model)
    missing, unexpected = qat_model.load_state_dict(
        float_model.state_dict(), strict=False
    )
    assert not unexpected and all('_quantizer.' in k for k in missing)


def test_float_checkpoint_via_load_from_needs_non_strict(cifar_root, tmp_path):
    # docs/qat.md: a float checkpoint goes into a QAT model through
    # load_from only when the non-strict load is asked for explicitly.
    name = 'resnet18_w4a4_sgd_1xb128_cifar10.py'
    cfg = _small(Config.fromfile(CONFIG_DIR / name), cifar_root, tmp_path)
    ckpt = tmp_path / 'float.pth'
    float_model = _float_checkpoint(cfg, ckpt)
    cfg.model.float_checkpoint = None
    cfg.load_from = str(ckpt)
    strict = Runner.from_cfg(copy.deepcopy(cfg))
    with pytest.raises(KeyError, match=r'missing.*--non-strict'):
        strict.load_or_resume()
    cfg.default_hooks.checkpoint_check.strict = False  # = --non-strict
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    want, got = float_model.state_dict(), runner.model.state_dict()
    assert all(k in got for k in want)  # every float weight has its place
    for k in want:
        assert torch.equal(want[k], got[k]), k

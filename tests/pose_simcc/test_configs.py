"""The shipped configs parse, build, and carry the paper's / mmpose's
recipe."""

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from .helpers import CONFIG_DIR, CONFIGS


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_mpii_recipe(name):
    cfg = Config.fromfile(str(CONFIGS[name]))
    assert cfg.default_scope == 'tasks.pose_simcc'
    assert cfg.model_wrapper_cfg.type == 'SAMDistributedDataParallel'
    assert cfg.train_dataloader.batch_size == 64
    assert cfg.train_cfg.max_epochs == 210
    assert cfg.codec.input_size == (256, 256)
    assert cfg.model.backbone == dict(type='ResNet', depth=50, checkpoint=None)
    assert cfg.model.test_cfg.flip_test is True
    assert cfg.default_hooks.checkpoint.save_best == 'PCK'
    assert cfg.val_evaluator.type == 'MpiiPCKAccuracy'
    assert cfg.optim_wrapper.optimizer == dict(type='Adam', lr=5e-4)
    warmup, decay = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.by_epoch) == (
        'LinearLR',
        500,
        False,
    )
    assert (decay.type, decay.milestones) == ('MultiStepLR', [170, 200])
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert 'sample_idx' in loader.dataset.pipeline[-1].meta_keys
    expected = {
        'adam': 'OptimWrapper',
        'sam': 'SAMOptimWrapper',
        'ausam': 'AUSAMOptimWrapper',
    }[name]
    assert cfg.optim_wrapper.type == expected
    if name == 'ausam':
        assert cfg.optim_wrapper.alpha == 0.5


@pytest.mark.parametrize(
    'path', sorted(CONFIG_DIR.glob('*.py')), ids=lambda p: p.name
)
def test_every_config_builds_model_and_optim_wrapper(path):
    from tasks.pose_simcc.registry import MODELS

    cfg = Config.fromfile(str(path))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert type(wrapper).__name__ == cfg.optim_wrapper.type
    assert type(wrapper.optimizer).__name__ == 'Adam'

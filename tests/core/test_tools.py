"""tools/train.py and tools/test.py on a tiny config."""

import textwrap

import pytest
import torch

from ausam_tasks.engine.checkpoint import load_checkpoint_file
from ausam_tasks.tools import test as test_tool
from ausam_tasks.tools import train as train_tool

from .toy import ToyDataset, ToyNet

CONFIG = textwrap.dedent("""
    custom_imports = dict(imports=['ausam_tasks', 'tests.core.toy'],
                          allow_failed_imports=False)
    default_scope = 'mmengine'
    model = dict(type='ToyNet')
    _data = dict(dataset=dict(type='ToyDataset', size=32),
                 sampler=dict(type='DefaultSampler', shuffle=True),
                 collate_fn=dict(type='pseudo_collate'), batch_size=8,
                 num_workers=0)
    train_dataloader = _data
    val_dataloader = dict(_data, sampler=dict(type='DefaultSampler',
                                              shuffle=False))
    val_evaluator = dict(type='ToyAccuracy')
    val_cfg = dict()
    train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    optim_wrapper = dict(type='AUSAMOptimWrapper', alpha=0.5, rho=0.05,
                         optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
    default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1))
    custom_hooks = [dict(type='SharpnessAwareLoggerHook')]
    randomness = dict(seed=0)
    log_level = 'WARNING'
""")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'toy_ausam.py'
    path.write_text(CONFIG)
    return str(path)


def test_train_resume_and_test(config, tmp_path, capsys):
    work = str(tmp_path / 'work')
    runner = train_tool.main(
        [
            config,
            '--work-dir',
            work,
            '--cfg-options',
            'optim_wrapper.alpha=0.25',
        ]
    )
    assert runner.optim_wrapper.core.alpha == 0.25
    assert runner.optim_wrapper.core.num_steps == 4
    runner = train_tool.main(
        [
            config,
            '--work-dir',
            work,
            '--resume',
            '--cfg-options',
            'train_cfg.max_epochs=2',
        ]
    )
    assert runner.optim_wrapper.core.num_steps == 8  # 4 resumed + 4 new
    assert runner.optim_wrapper.selection_counts().sum() == 32 + 8 * 2
    metrics = test_tool.main(
        [config, f'{work}/epoch_2.pth', '--work-dir', str(tmp_path / 'test')]
    )
    # By hand: the checkpoint's weights on the 32 validation samples.
    model = ToyNet().eval()
    model.load_state_dict(
        load_checkpoint_file(f'{work}/epoch_2.pth')['state_dict']
    )
    ds = ToyDataset(32)
    with torch.no_grad():
        pred = model(ds.x).argmax(1)
    assert metrics['accuracy'] == pytest.approx(
        100 * (pred == ds.y).float().mean().item()
    )
    assert f'accuracy  {metrics["accuracy"]:.4f}' in capsys.readouterr().out


@pytest.mark.parametrize('gpu', [False, True])
def test_amp_flag(config, monkeypatch, gpu):
    """fp16 with loss scaling on a GPU; bf16 autocast on a CPU, for the
    SAM family and plain OptimWrapper alike."""
    from mmengine.config import Config

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: gpu)
    args = train_tool.parse_args([config, '--amp'])
    cfg = train_tool.merge_args(Config.fromfile(config), args)
    assert cfg.optim_wrapper.dtype == ('float16' if gpu else 'bfloat16')
    cfg = Config.fromfile(config)
    cfg.optim_wrapper = dict(
        type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer
    )
    ow = train_tool.merge_args(cfg, args).optim_wrapper
    if gpu:
        assert (ow.type, ow.loss_scale) == ('AmpOptimWrapper', 'dynamic')
    else:
        assert (ow.type, ow.dtype) == ('AutocastOptimWrapper', 'bfloat16')


@pytest.mark.parametrize('kind', ['AUSAMOptimWrapper', 'OptimWrapper'])
def test_amp_on_a_cpu_trains_in_bf16(config, tmp_path, kind):
    argv = [config, '--amp', '--work-dir', str(tmp_path / 'w')]
    if kind == 'OptimWrapper':
        argv += [
            '--cfg-options',
            'optim_wrapper._delete_=True',
            'optim_wrapper.type=OptimWrapper',
            'optim_wrapper.optimizer.type=SGD',
            'optim_wrapper.optimizer.lr=0.05',
        ]
    seen = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: (
            seen.append(torch.get_autocast_dtype('cpu'))
            if isinstance(m, ToyNet) and torch.is_autocast_enabled('cpu')
            else None
        )
    )
    try:
        runner = train_tool.main(argv)
    finally:
        handle.remove()
    assert runner.iter == 4 and seen and set(seen) == {torch.bfloat16}


def test_optim_wrapper_errors_come_before_the_runner(config, monkeypatch):
    """Each is raised when the config is read, naming the setting."""
    from mmengine.runner import Runner

    def too_late(*a, **k):
        raise AssertionError('the Runner was built before the check')

    monkeypatch.setattr(Runner, 'from_cfg', too_late)
    cases = {
        'optim_wrapper.type=FooSAMOptimWrapper': (
            ValueError,
            "'FooSAMOptimWrapper' is not a registered optimizer wrapper.*"
            'Registered: .*LookSAMOptimWrapper',
        ),
        'optim_wrapper.aplha=0.3': (TypeError, "did you mean 'alpha'"),
        'optim_wrapper.alpha=1.5': (ValueError, 'alpha'),
        'optim_wrapper.loss_scale=-1.0': (ValueError, 'loss_scale'),
        'optim_wrapper.type=OptimWrapper': (
            ValueError,
            r"still sets \['alpha', 'rho'\].*_delete_=True",
        ),
    }
    for option, (error, match) in cases.items():
        with pytest.raises(error, match=match):
            train_tool.main([config, '--cfg-options', option])


@pytest.mark.parametrize('scale,applied', [(512.0, True), (2.0**100, False)])
def test_fixed_loss_scale_trains_in_fp16(scale, applied):
    """A fixed scale stays fixed, and an overflowing step is skipped
    (mmengine's AmpOptimWrapper semantics); torch refuses growth_factor=1,
    which the first version used."""
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper

    model = ToyNet()
    ow = build_optim_wrapper(
        model,
        dict(
            type='SAMOptimWrapper',
            dtype='float16',
            loss_scale=scale,
            optimizer=dict(type='SGD', lr=0.1),
        ),
    )
    data = ToyDataset(size=8)
    batch = pseudo_collate([data[i] for i in range(8)])
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):
        model.train_step(batch, ow)
        assert ow.loss_scaler.get_scale() == scale
    moved = [not torch.equal(a, p) for a, p in zip(before, model.parameters())]
    assert any(moved) == applied


def test_auto_scale_lr_scales_by_the_total_batch(config, tmp_path):
    # Batch 8 on one process against a base of 32: lr 0.05 -> 0.0125.
    with pytest.raises(ValueError, match='auto_scale_lr.base_batch_size'):
        train_tool.main([config, '--auto-scale-lr'])
    # 2 loader batches of 8 per update: the update's batch is 16.
    for counts in (1, 2):
        runner = train_tool.main(
            [
                config,
                '--work-dir',
                str(tmp_path / f'work{counts}'),
                '--auto-scale-lr',
                '--no-validate',
                '--cfg-options',
                'auto_scale_lr.base_batch_size=32',
                f'optim_wrapper.accumulative_counts={counts}',
            ]
        )
        lr = runner.optim_wrapper.optimizer.param_groups[0]['lr']
        assert lr == pytest.approx(0.05 * 8 * counts / 32)
        assert runner.cfg.auto_scale_lr.base_batch_size == 32  # as dumped


def test_missing_files_are_named(config, tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        train_tool.main([str(tmp_path / 'nope.py')])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        train_tool.main([config, '--resume', str(tmp_path / 'missing.pth')])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        test_tool.main([config, str(tmp_path / 'missing.pth')])

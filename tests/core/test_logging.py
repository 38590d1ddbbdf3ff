"""SharpnessAwareLoggerHook: epochs counted from 1, per-epoch figures once
per epoch, progress lines on slow runs."""

import glob
import json
import uuid

from mmengine.config import Config
from mmengine.runner import Runner

from .toy import runner_cfg

AUSAM = dict(
    type='AUSAMOptimWrapper',
    alpha=0.5,
    optimizer=dict(type='SGD', lr=0.1),
)


def train(tmp_path, logger_interval, progress_seconds):
    cfg = runner_cfg(
        tmp_path,
        AUSAM,
        max_epochs=2,
        log_level='INFO',
        custom_hooks=[
            dict(
                type='SharpnessAwareLoggerHook',
                progress_seconds=progress_seconds,
            )
        ],
        # mmengine names the logger and visualizer by a 1-second timestamp:
        # a unique name keeps a previous test's instances out.
        experiment_name=f'logging_{uuid.uuid4().hex}',
        visualizer=dict(
            type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]
        ),
    )
    cfg['default_hooks']['logger']['interval'] = logger_interval
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    (log,) = glob.glob(str(tmp_path / '*' / '*.log'))
    return runner, open(log).read().splitlines()


def test_epochs_from_one_and_figures_once_per_epoch(tmp_path):
    runner, lines = train(tmp_path, logger_interval=1, progress_seconds=0)
    took = [ln.split(' - ')[-1] for ln in lines if ' took ' in ln]
    assert [t.split(' took')[0] for t in took] == ['epoch 1', 'epoch 2']
    assert (tmp_path / 'epoch_1.pth').exists()  # the same numbering
    iteration_lines = [ln for ln in lines if 'Epoch(train)' in ln]
    assert len(iteration_lines) == 8
    assert not any('epoch_time' in ln for ln in iteration_lines)
    assert 'train/epoch_time' not in runner.message_hub.log_scalars
    (scalars,) = glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))
    per_epoch = [
        r for r in map(json.loads, open(scalars)) if 'epoch_time' in r
    ]
    assert [(r['epoch'], r['step']) for r in per_epoch] == [(1, 4), (2, 8)]
    assert [r['epoch_sam_frac'] for r in per_epoch] == [1.0, 0.5]
    assert not any('s/iter' in ln for ln in lines)


def test_progress_lines_when_the_logger_is_quiet(tmp_path):
    _, lines = train(tmp_path, logger_interval=100, progress_seconds=1e-9)
    progress = [ln.split(' - ')[-1] for ln in lines if 's/iter' in ln]
    # not at an epoch's last iteration: LoggerHook logs there
    assert [p.split(' ')[2] for p in progress] == [
        f'[{i}/4]' for i in (1, 2, 3)
    ] * 2
    assert progress[0].startswith('epoch 1 [1/4]')
    assert progress[-1].startswith('epoch 2 [3/4]')


def test_epoch_fraction_weighs_each_update_by_its_cycle(tmp_path):
    """LookSAM (SAM every 5th update), 5 loader batches of 16 accumulated
    in pairs: updates of 32 (SAM), 32 (plain) and the short last 16
    (plain), so SAM passes used 32 of the epoch's 80 samples; the same
    with the log variables returned each step and held to the interval."""
    for every_iter in (True, False):
        work = tmp_path / str(every_iter)
        cfg = runner_cfg(
            work,
            dict(
                type='LookSAMOptimWrapper',
                k=5,
                accumulative_counts=2,
                optimizer=dict(type='SGD', lr=0.1),
            ),
            max_epochs=1,
            dataset_size=80,
            custom_hooks=[
                dict(
                    type='SharpnessAwareLoggerHook', log_every_iter=every_iter
                )
            ],
            experiment_name=f'logging_{uuid.uuid4().hex}',
            visualizer=dict(
                type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]
            ),
        )
        cfg['default_hooks']['logger']['interval'] = 2
        Runner.from_cfg(Config(cfg)).train()
        (scalars,) = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
        (epoch,) = [
            r for r in map(json.loads, open(scalars)) if 'epoch_time' in r
        ]
        assert epoch['epoch_sam_frac'] == 32 / 80

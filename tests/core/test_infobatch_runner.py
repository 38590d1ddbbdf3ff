"""InfoBatch through the real mmengine Runner: shorter epochs, the LR
schedule over them, a bit-identical resume from the middle of an epoch,
two gloo ranks, and the bad inputs."""

import glob
import math
import re
import uuid
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from ausam_tasks.engine.infobatch import check_infobatch_config
from tests.core.toy import runner_cfg
from tests.torchrun import run_two_ranks

EPOCHS, SIZE, BATCH = 4, 64, 8  # 8 iterations in an unpruned epoch
SAM_INFO = dict(
    type='SAMOptimWrapper',
    rho=0.1,
    infobatch_pass='second',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
)


def infobatch_cfg(work_dir, optim_wrapper=SAM_INFO, delta=0.75, **kw):
    """The toy run with InfoBatch as the shipped configs set it; delta 0.75
    of 4 epochs: epochs 1-2 prune, epoch 3 anneals (0 has no scores)."""
    cfg = runner_cfg(
        work_dir,
        optim_wrapper,
        max_epochs=EPOCHS,
        batch_size=BATCH,
        dataset_size=SIZE,
        **kw,
    )
    cfg['train_dataloader']['sampler'] = dict(
        type='InfoBatchSampler', prune_ratio=0.5, delta=delta
    )
    cfg['param_scheduler'] = [
        dict(
            type='CosineAnnealingLR',
            T_max=EPOCHS,
            by_epoch=True,
            convert_to_iter_based=True,
        )
    ]
    cfg['default_hooks']['param_scheduler'] = dict(
        type='InfoBatchParamSchedulerHook'
    )
    cfg['custom_hooks'] = [
        *cfg.get('custom_hooks', []),
        {'type': 'InfoBatchHook'},
    ]
    return cfg


@HOOKS.register_module()
class RecordSchedule(Hook):
    """The LR each iteration trains with, and each epoch's batches."""

    priority = 'LOWEST'

    def __init__(self):
        self.lrs, self.batches = [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs.append(
            (runner.epoch, batch_idx, runner.optim_wrapper.get_lr()['lr'][0])
        )

    def before_train_epoch(self, runner):
        self.batches.append(len(runner.train_dataloader))


class Killed(Exception):
    pass


@HOOKS.register_module()
class KillAfterIter(Hook):
    """Raises after iteration ``iters`` (its checkpoint written), as a kill
    in the middle of an epoch would."""

    priority = 'LOWEST'

    def __init__(self, iters):
        self.iters = iters

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        if runner.iter + 1 >= self.iters:
            raise Killed


def train(cfg):
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner


def test_epochs_shrink_and_the_lr_follows_epochs_not_iterations(tmp_path):
    rec = RecordSchedule()
    cfg = infobatch_cfg(
        tmp_path, log_level='INFO', experiment_name=uuid.uuid4().hex
    )
    runner = Runner.from_cfg(Config(cfg))
    runner.register_hook(rec)
    runner.train()
    full = SIZE // BATCH
    assert (
        rec.batches[0] == full and rec.batches[3] == full
    )  # no scores; annealed
    assert all(b < full for b in rec.batches[1:3]), rec.batches
    # Each epoch's log names the samples it keeps.
    (log,) = glob.glob(str(tmp_path / '*' / '*.log'))
    said = re.findall(r'epoch (\d) trains (\d+) of (\d+)', open(log).read())
    assert [int(e) for e, _, _ in said] == [1, 2, 3, 4]
    assert {int(n) for _, _, n in said} == {SIZE}
    kept = [int(k) for _, k, _ in said]
    assert [math.ceil(k / BATCH) for k in kept] == rec.batches
    sampler = runner.train_dataloader.sampler
    assert sampler.info.num_epochs == EPOCHS  # from the Runner
    # The LR of iteration b of epoch e (B batches) is the unpruned run's at
    # e * L + round(L * b / B) steps: equal at every epoch start.
    total = EPOCHS * full

    def cosine(step):
        return 0.1 * (1 + math.cos(math.pi * step / total)) / 2

    for epoch, b, lr in rec.lrs:
        steps = epoch * full + round(full * b / rec.batches[epoch])
        assert lr == pytest.approx(cosine(steps), rel=1e-9, abs=1e-12)
    assert [lr for e, b, lr in rec.lrs if b == 0] == pytest.approx(
        [cosine(e * full) for e in range(EPOCHS)]
    )
    # The schedule ends with training although fewer iterations ran.
    assert runner.iter == sum(rec.batches) < total
    scheduler = runner.param_schedulers[0]
    assert scheduler._global_step == total
    # mmengine's last update is at step end - 1, as in an unpruned run.
    lr = runner.optim_wrapper.get_lr()['lr'][0]
    assert lr == pytest.approx(cosine(total - 1))


def test_a_resume_in_the_middle_of_an_epoch_continues_exactly(tmp_path):
    ckpt = dict(type='CheckpointHook', by_epoch=False, interval=10)
    full = train(infobatch_cfg(tmp_path / 'full'))
    # Iteration 10 is in epoch 1, the first pruned one.
    with pytest.raises(Killed):
        train(
            infobatch_cfg(
                tmp_path / 'half',
                custom_hooks=[dict(type='KillAfterIter', iters=10)],
                default_hooks=dict(checkpoint=ckpt),
            )
        )
    state = torch.load(tmp_path / 'half' / 'iter_10.pth', weights_only=False)[
        'infobatch'
    ]
    assert state['epoch'] == 1 and 0 < state['consumed'] < len(state['kept'])
    resumed = train(
        infobatch_cfg(
            tmp_path / 'half', resume=True, default_hooks=dict(checkpoint=ckpt)
        )
    )
    assert resumed.iter == full.iter
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ia = full.train_dataloader.sampler.info
    ib = resumed.train_dataloader.sampler.info
    assert torch.equal(ia.scores, ib.scores)


def test_two_ranks_draw_the_same_kept_sets_and_keep_identical_weights(
    tmp_path,
):
    worker = Path(__file__).with_name('ddp_infobatch_worker.py')
    r0, r1 = run_two_ranks(worker, tmp_path)
    assert len(r0['plans']) == EPOCHS
    for (k0, w0, s0), (k1, w1, s1) in zip(
        r0['plans'], r1['plans'], strict=True
    ):
        assert torch.equal(k0, k1) and torch.equal(w0, w1)
        # Each rank trains its own shard; together the kept set (padded).
        assert not set(s0) & set(s1) or len(k0) % 2
        assert set(s0) | set(s1) == set(k0.tolist())
    assert any(len(k) < SIZE for k, _, _ in r0['plans'])  # it pruned
    assert torch.equal(r0['scores'], r1['scores'])
    assert not torch.isnan(r0['scores']).any()  # every rank's losses
    for k, v in r0['model'].items():
        assert torch.equal(v, r1['model'][k]), k


# ------------------------------------------------------------ bad input


def config(**changes):
    cfg = Config(infobatch_cfg('/tmp/unused'))
    cfg.merge_from_dict(changes)
    return cfg


@pytest.mark.parametrize(
    'changes, match',
    [
        (
            {'train_dataloader.sampler.prune_ratio': 1.0},
            r'prune_ratio must be in \[0, 1\)',
        ),
        (
            {'train_dataloader.sampler.delta': 0.0},
            r'delta must be in \(0, 1\]',
        ),
        (
            {'train_dataloader.sampler': dict(type='DefaultSampler')},
            'InfoBatch replaces the training sampler, but train_dataloader.'
            "sampler is 'DefaultSampler'",
        ),
        (
            {
                'train_dataloader.batch_sampler': dict(
                    type='AspectRatioBatchSampler'
                )
            },
            'cannot be combined with train_dataloader.batch_sampler',
        ),
        (
            {'train_cfg': dict(by_epoch=False, max_iters=10)},
            'InfoBatch prunes per epoch, but train_cfg has by_epoch=False',
        ),
        (
            {'train_cfg': dict(type='IterBasedTrainLoop', max_iters=10)},
            "train_cfg has type='IterBasedTrainLoop'",
        ),
        (
            {'default_hooks.param_scheduler.type': 'ParamSchedulerHook'},
            'missing .*InfoBatchParamSchedulerHook',
        ),
    ],
)
def test_bad_configs_fail_when_read(changes, match):
    with pytest.raises(ValueError, match=match):
        check_infobatch_config(config(**changes))


def test_a_misspelt_sampler_setting_fails_when_read():
    with pytest.raises(TypeError, match="'prune_ration' .*'prune_ratio'"):
        check_infobatch_config(
            config(**{'train_dataloader.sampler.prune_ration': 0.7})
        )


def test_a_good_config_passes_the_check():
    check_infobatch_config(config())


def test_a_method_with_its_own_selection_refuses_infobatch(tmp_path):
    from ausam_tasks.tools.args import check_optim_wrapper

    cfg = config(optim_wrapper=dict(type='AUSAMOptimWrapper', alpha=0.5))
    with pytest.raises(ValueError, match='AUSAMOptimWrapper does not take'):
        check_optim_wrapper(cfg)


def test_a_dataset_without_sample_indices_is_named(tmp_path):
    cfg = infobatch_cfg(tmp_path)
    cfg['train_dataloader']['dataset']['with_idx'] = False
    with pytest.raises(ValueError, match='carry no sample_idx'):
        train(cfg)


def test_the_hook_refuses_a_wrapper_without_infobatch_pass(tmp_path):
    cfg = infobatch_cfg(tmp_path, dict(SAM_INFO, infobatch_pass=None))
    with pytest.raises(TypeError, match='without infobatch_pass'):
        train(cfg)

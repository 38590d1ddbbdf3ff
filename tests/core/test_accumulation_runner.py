"""accumulative_counts through the real mmengine Runner: loader batches
count as iterations (LR schedule, logs), an update every N of them across
epoch boundaries, the short last cycle, and a resume mid-cycle."""

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from tests.core.toy import runner_cfg

SAM = dict(
    type='SAMOptimWrapper',
    rho=0.1,
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
)


@HOOKS.register_module()
class RecordIters(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.lrs, self.logged, self.steps = [], [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs.append(runner.optim_wrapper.get_lr()['lr'][0])

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        self.logged.append('loss' in (outputs or {}))
        self.steps.append(runner.optim_wrapper.core.num_steps)


@HOOKS.register_module()
class StopAfterFirstEpoch(Hook):
    """A kill after epoch 1's checkpoint."""

    priority = 'LOWEST'

    def after_train_epoch(self, runner):
        runner.train_loop.stop_training = True


def run(work_dir, counts, max_epochs=2, **kw):
    """7 loader batches of 8 per epoch (56 samples)."""
    cfg = runner_cfg(
        work_dir,
        dict(SAM, accumulative_counts=counts),
        max_epochs=max_epochs,
        batch_size=8,
        dataset_size=56,
        model=dict(type='ToyNet', bn=False),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=14)
        ],
        **kw,
    )
    runner = Runner.from_cfg(Config(cfg))
    rec = RecordIters()
    runner.register_hook(rec)
    runner.train()
    return runner, rec


def test_iterations_count_loader_batches_and_updates_every_n(tmp_path):
    runner, rec = run(tmp_path / 'a', 2)
    assert runner.iter == 14  # loader batches, as mmengine counts them
    # Updates at iterations 2, 4, ..., 14: the cycle of iterations 7-8
    # spans the epoch boundary, as in mmengine's OptimWrapper.
    assert rec.steps == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7]
    assert rec.logged == [s % 2 == 1 for s in range(14)]
    # The LR schedule steps per loader batch (14 values, all different).
    assert len(set(rec.lrs)) == 14


def test_the_last_short_cycle_updates_at_the_end(tmp_path):
    runner, rec = run(tmp_path / 'b', 4, max_epochs=1)  # 7 = 4 + 3
    assert rec.steps == [0, 0, 0, 1, 1, 1, 2]
    assert rec.logged[-1] and rec.logged[3]


def test_a_resume_mid_cycle_drops_the_cycle_s_earlier_batches(tmp_path):
    """The epoch-1 checkpoint is at iteration 7, inside a cycle (7-8): the
    resumed run's first update uses batch 8 alone, as mmengine's
    OptimWrapper drops the gradient accumulated before a checkpoint."""
    full, _ = run(tmp_path / 'full', 2)
    kill = [dict(type='StopAfterFirstEpoch')]
    _, rec = run(tmp_path / 'half', 2, custom_hooks=kill)
    assert rec.steps[-1] == 3  # batch 7 is held, not yet applied
    resumed, rec = run(tmp_path / 'half', 2, resume=True)
    assert rec.steps == [4, 4, 5, 5, 6, 6, 7]  # 3 before, 4 after
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_a_resume_at_a_cycle_boundary_continues_exactly(tmp_path):
    full, _ = run(tmp_path / 'full', 7)  # cycles = epochs
    run(tmp_path / 'half', 7, custom_hooks=[dict(type='StopAfterFirstEpoch')])
    resumed, _ = run(tmp_path / 'half', 7, resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_tools_train_reads_bad_counts_before_building(tmp_path):
    from ausam_tasks.tools.args import check_optim_wrapper

    cfg = Config(runner_cfg(tmp_path, dict(SAM, accumulative_counts=0)))
    with pytest.raises(ValueError, match='accumulative_counts must be'):
        check_optim_wrapper(cfg)

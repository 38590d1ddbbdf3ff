"""The wrappers inside a real mmengine Runner: resume and DDP."""

import subprocess
import sys
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from tests.torchrun import run_two_ranks

from .toy import runner_cfg


@HOOKS.register_module()
class StopAfterEpoch(Hook):
    """Simulates an interrupted run: same config, stops after ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 >= self.epoch:
            runner.train_loop.stop_training = True


AUSAM = dict(
    type='AUSAMOptimWrapper',
    alpha=0.5,
    rho=0.1,
    init_epochs=1,
    warmup_epochs=2,
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4),
)
SCHEDULE = [dict(type='CosineAnnealingLR', T_max=4, by_epoch=True)]


def train(work_dir, max_epochs, **kw):
    runner = Runner.from_cfg(
        Config(
            runner_cfg(
                work_dir,
                AUSAM,
                max_epochs=max_epochs,
                param_scheduler=SCHEDULE,
                **kw,
            )
        )
    )
    runner.train()
    return runner


def test_resume_gives_the_same_weights_and_scores(tmp_path):
    full = train(tmp_path / 'full', 4)
    train(
        tmp_path / 'half',
        4,
        custom_hooks=[dict(type='StopAfterEpoch', epoch=2)],
    )
    assert (tmp_path / 'half' / 'epoch_2.pth').exists()
    assert not (tmp_path / 'half' / 'epoch_3.pth').exists()
    resumed = train(tmp_path / 'half', 4, resume=True)
    for (k, a), b in zip(
        full.model.state_dict().items(), resumed.model.state_dict().values()
    ):
        assert torch.equal(a, b), k
    oa, ob = full.optim_wrapper, resumed.optim_wrapper
    assert oa.core.num_steps == ob.core.num_steps == 16
    count = oa.selection_counts()
    assert torch.equal(count, ob.selection_counts())
    idx = torch.arange(len(count))
    torch.testing.assert_close(
        oa.sample_scores(idx),
        ob.sample_scores(idx),
        rtol=0,
        atol=0,
        equal_nan=True,
    )
    # After the full-SAM first epoch every sample has a score, and later
    # epochs trained on half of each batch.
    assert (count[:64] >= 1).all()
    assert int(count.sum()) == 64 + 3 * 64 // 2
    lr = full.optim_wrapper.get_lr()['lr'][0]
    assert lr == resumed.optim_wrapper.get_lr()['lr'][0] < 0.1


def test_checkpoint_loads_in_a_fresh_process_without_unsafe_unpickling(
    tmp_path,
):
    train(tmp_path, 1)
    code = (
        'import sys; from ausam_tasks.engine import load_checkpoint_file;'
        'c = load_checkpoint_file(sys.argv[1]);'
        "print(c['optimizer']['sharpness_aware']['num_steps'])"
    )
    out = subprocess.run(
        [sys.executable, '-c', code, str(tmp_path / 'epoch_1.pth')],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith('4')


def test_resume_from_an_explicit_checkpoint_path(tmp_path):
    train(tmp_path / 'a', 1)
    ckpt = tmp_path / 'a' / 'epoch_1.pth'
    runner = train(tmp_path / 'b', 2, resume=True, load_from=str(ckpt))
    assert runner.optim_wrapper.core.num_steps == 8


def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    worker = Path(__file__).with_name('ddp_worker.py')
    r0, r1 = run_two_ranks(worker, tmp_path)
    assert r0['world'] == 2
    for k, v in r0['model'].items():
        assert torch.equal(v, r1['model'][k]), k
    torch.testing.assert_close(
        r0['value'], r1['value'], rtol=0, atol=0, equal_nan=True
    )
    assert torch.equal(r0['count'], r1['count'])
    # 64 samples over 2 ranks, batch 8: epoch 0 scores all 64, epochs 1-2
    # score half of each batch, gathered from both ranks into each table.
    assert int(r0['count'].sum()) == 64 + 2 * 32
    assert (r0['count'][:64] >= 1).all()

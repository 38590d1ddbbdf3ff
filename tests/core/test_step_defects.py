"""Defects fixed with the one step protocol (issue 18), each checked here
(the registry harness covers the overflow and fixed-loss-scale ones)."""

import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

from ausam_tasks.engine.hooks import SharpnessAwareLoggerHook
from ausam_tasks.methods import MSAM
from tests.methods.wrappers_b import ToyNetWithOutputs  # noqa: F401

from .toy import ToyNet, runner_cfg


def test_logger_hook_refuses_rows_that_do_not_match_the_held_steps():
    model = ToyNet()
    ow = build_optim_wrapper(
        model, dict(type='SAMOptimWrapper', optimizer=dict(type='SGD', lr=0.1))
    )
    ow.defer_log_vars(on_cpu_too=True)
    # Two held rows, one recorded size: a row would be lost.
    ow._held_logs = [{'loss': 1.0}, {'loss': 2.0}]
    ow._held_sizes = [16]
    hook = SharpnessAwareLoggerHook()
    runner = SimpleNamespace(
        optim_wrapper=ow, message_hub=MessageHub.get_instance('defects')
    )
    with pytest.raises(ValueError, match='zip'):
        hook._flush(runner)


def test_msam_accepts_a_subclass_of_a_momentum_optimizer():
    class MySGD(torch.optim.SGD):
        pass

    w = torch.nn.Parameter(torch.ones(3))
    core = MSAM(MySGD([w], lr=0.1, momentum=0.9), rho=0.5)
    assert core._key == 'momentum_buffer'
    with pytest.raises(ValueError, match='has none it knows'):
        MSAM(torch.optim.Adagrad([w], lr=0.1))


@pytest.mark.parametrize(
    'wrapper, table',
    [
        (dict(type='SAFOptimWrapper', lag=1), lambda c: c.outputs.shape[1]),
        (dict(type='AUSAMOptimWrapper'), lambda c: len(c.table)),
    ],
)
def test_state_hook_sizes_per_sample_tables_to_the_dataset(
    tmp_path, wrapper, table
):
    """One iteration sees 8 of 40 samples; the table holds all 40."""
    cfg = runner_cfg(
        tmp_path,
        dict(wrapper, optimizer=dict(type='SGD', lr=0.1)),
        dataset_size=40,
        batch_size=8,
        model=dict(type='ToyNetWithOutputs'),
        train_cfg=dict(by_epoch=False, max_iters=1),
        custom_hooks=[dict(type='SharpnessAwareStateHook')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        experiment_name=f'defects_{wrapper["type"]}',
    )
    runner = Runner.from_cfg(Config(copy.deepcopy(cfg)))
    runner.train()
    assert table(runner.optim_wrapper.core) == 40


def test_no_checkpoint_state_after_an_unnoticed_non_finite_loss():
    """Deferred finite checks, no state hook: the wrapper's state_dict
    (what CheckpointHook saves) raises for the NaN step."""
    from .toy import ToyDataset, batch

    model = ToyNet()
    ow = build_optim_wrapper(
        model,
        dict(
            type='SAMOptimWrapper',
            finite_check='deferred',
            optimizer=dict(type='SGD', lr=0.1),
        ),
    )
    data = batch(ToyDataset(8), range(8))
    data['inputs'][2] = data['inputs'][2] * float('nan')
    model.train_step(data, ow)  # step 0 of 10 between deferred reads
    with pytest.raises(FloatingPointError, match='step 0'):
        ow.state_dict()

"""Run by torchrun in test_diagnostics_hook.py: AUSAM on 2 gloo ranks
with SelectionDiagnosticsHook (it computes on rank 0 only)."""

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from ausam_tasks.engine.dist import (  # noqa: E402
    close_process_group,
    init_cpu_process_group,
)
from tests.core.toy import runner_cfg  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument('out')
args = parser.parse_args()

init_cpu_process_group('pytorch')
cfg = runner_cfg(
    Path(args.out) / 'work',
    dict(
        type='AUSAMOptimWrapper',
        alpha=0.5,
        rho=0.1,
        init_epochs=1,
        warmup_epochs=1,
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
    ),
    max_epochs=2,
    batch_size=8,
    launcher='pytorch',
    custom_hooks=[
        dict(type='SelectionDiagnosticsHook', num_probe=8, num_draws=2)
    ],
)
runner = Runner.from_cfg(Config(cfg))
runner.train()
ow = runner.optim_wrapper
torch.save(
    {
        'model': runner.model.module.state_dict(),
        'count': ow.selection_counts(),
        'diag_keys': sorted(
            k for k in runner.message_hub.log_scalars if k.startswith('diag/')
        ),
    },
    Path(args.out) / f'rank{dist.get_rank()}.pt',
)
close_process_group()

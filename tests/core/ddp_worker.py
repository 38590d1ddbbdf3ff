"""Run by torchrun in test_runner.py: AUSAM training on 2 gloo ranks."""

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
    max_epochs=3,
    batch_size=8,
    launcher='pytorch',
)
runner = Runner.from_cfg(Config(cfg))
runner.train()
rank = dist.get_rank()
ow = runner.optim_wrapper
counts = ow.selection_counts()
torch.save(
    {
        'model': runner.model.module.state_dict(),
        'value': ow.sample_scores(torch.arange(len(counts))),
        'count': counts,
        'steps': ow.core.num_steps,
        'world': dist.get_world_size(),
    },
    Path(args.out) / f'rank{rank}.pt',
)
close_process_group()

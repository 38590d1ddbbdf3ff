"""Run by torchrun in test_registry.py: every case of the registry harness
trains the toy model through mmengine's Runner on 2 gloo ranks; each rank
saves its final parameters.

ddp_registry_worker.py OUT '{"WrapperType": optim_wrapper cfg, ...}'
"""

import argparse
import json
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
from tests.methods.wrappers_b import ToyNetWithOutputs  # noqa: E402,F401

parser = argparse.ArgumentParser()
parser.add_argument('out')
parser.add_argument('cases')
args = parser.parse_args()

init_cpu_process_group('pytorch')
for name, optim_wrapper in json.loads(args.cases).items():
    # 32 samples, 2 ranks, batch 8: 2 iterations an epoch, 2 epochs, so
    # the epoch-1 behaviour of the cases (subsets, KL terms, late SAM) runs.
    cfg = runner_cfg(
        Path(args.out) / name,
        optim_wrapper,
        max_epochs=2,
        batch_size=8,
        dataset_size=32,
        launcher='pytorch',
        experiment_name=f'registry_{name}',
        model=dict(type='ToyNetWithOutputs'),
        default_hooks=dict(
            checkpoint=None, logger=dict(type='LoggerHook', interval=1)
        ),
    )
    runner = Runner.from_cfg(Config(cfg))
    model = runner.model.module
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    runner.train()
    torch.save(
        {
            'start': start,
            'params': {k: v.detach() for k, v in model.named_parameters()},
            'iters': runner.iter,
            'world': dist.get_world_size(),
        },
        Path(args.out) / f'{name}_rank{dist.get_rank()}.pt',
    )
close_process_group()

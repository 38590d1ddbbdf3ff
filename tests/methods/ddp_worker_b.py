"""Run by torchrun in test_ddp_b.py: each method in turn on 2 gloo ranks.

ddp_worker_b.py OUT '{"name": optim_wrapper cfg, ...}'
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

import ausam_tasks.methods.esam as esam  # noqa: E402
from ausam_tasks.engine.dist import (  # noqa: E402
    close_process_group,
    init_cpu_process_group,
)
from tests.core.toy import runner_cfg  # noqa: E402
from tests.methods.wrappers_b import ToyNetWithOutputs  # noqa: E402,F401

parser = argparse.ArgumentParser()
parser.add_argument('out')
parser.add_argument('methods')
args = parser.parse_args()

# Record a checksum of every SWP mask drawn, to compare across ranks.
masks_seen = []
draw = esam.swp_masks


def recording_swp_masks(params, beta, seed, step):
    masks = draw(params, beta, seed, step)
    flat = torch.cat([m.flatten() for m in masks]).double()
    masks_seen.append(float(flat @ torch.arange(len(flat)).double()))
    return masks


esam.swp_masks = recording_swp_masks

init_cpu_process_group('pytorch')
for name, optim_wrapper in json.loads(args.methods).items():
    masks_seen.clear()
    cfg = runner_cfg(
        Path(args.out) / name,
        optim_wrapper,
        max_epochs=2,
        batch_size=8,
        launcher='pytorch',
        experiment_name=name,
        model=dict(type='ToyNetWithOutputs'),  # ToyNet + outputs (MESA)
    )
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    core = runner.optim_wrapper.core
    torch.save(
        {
            'params': dict(runner.model.module.named_parameters()),
            'buffers': dict(runner.model.module.named_buffers()),
            'masks': list(masks_seen),
            'steps': core.num_steps,
            'core': core.state_dict(),
            'world': dist.get_world_size(),
        },
        Path(args.out) / f'{name}_rank{dist.get_rank()}.pt',
    )
close_process_group()

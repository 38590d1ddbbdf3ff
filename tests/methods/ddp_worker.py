"""Run by torchrun in test_ddp.py: each method wrapper trains the toy model
on 2 gloo ranks; every iteration's weights and step kind are recorded."""

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from ausam_tasks.engine.dist import (  # noqa: E402
    close_process_group,
    init_cpu_process_group,
)
from tests.core.toy import runner_cfg  # noqa: E402

METHODS = {
    'LookSAM': dict(type='LookSAMOptimWrapper', k=3, alpha=0.7),
    'RST': dict(type='RSTOptimWrapper', p_start=0.5, seed=2),
    'LatePhaseSAM': dict(type='LatePhaseSAMOptimWrapper', start_epoch=1),
    'KSAM': dict(type='KSAMOptimWrapper', alpha=0.5),
}


@HOOKS.register_module()
class RecordEachStep(Hook):
    """Each iteration's weights (flattened) and sam_frac."""

    def __init__(self):
        self.weights, self.sam = [], []

    def after_train_iter(self, runner, batch_idx, data_batch, outputs):
        params = runner.model.module.parameters()
        self.weights.append(torch.cat([p.detach().flatten() for p in params]))
        self.sam.append(float(outputs['sam_frac']))


parser = argparse.ArgumentParser()
parser.add_argument('out')
args = parser.parse_args()

init_cpu_process_group('pytorch')
result = {}
for name, method in METHODS.items():
    cfg = runner_cfg(
        Path(args.out) / name,
        dict(
            method, rho=0.1, optimizer=dict(type='SGD', lr=0.1, momentum=0.9)
        ),
        max_epochs=2,
        batch_size=8,
        launcher='pytorch',
        experiment_name=f'ddp_{name}',
        custom_hooks=[dict(type='RecordEachStep')],
    )
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, RecordEachStep))
    result[name] = dict(weights=torch.stack(hook.weights), sam=hook.sam)
result['world'] = dist.get_world_size()
torch.save(result, Path(args.out) / f'rank{dist.get_rank()}.pt')
close_process_group()

"""Run by torchrun in test_infobatch_runner.py: SAM+Info on 2 gloo ranks;
each rank saves every epoch's plan, the indices it trained on, the scores
and the weights."""

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from ausam_tasks.engine.dist import (  # noqa: E402
    close_process_group,
    init_cpu_process_group,
)
from tests.core.test_infobatch_runner import infobatch_cfg  # noqa: E402


class RecordPlans(Hook):
    priority = 'LOWEST'

    def __init__(self):
        self.plans = []

    def before_train_epoch(self, runner):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen += [int(s.sample_idx) for s in data_batch['data_samples']]

    def after_train_epoch(self, runner):
        info = runner.train_dataloader.sampler.info
        kept, weights = info.plan(runner.epoch)
        self.plans.append((kept.clone(), weights.clone(), self.seen))


parser = argparse.ArgumentParser()
parser.add_argument('out')
args = parser.parse_args()

init_cpu_process_group('pytorch')
cfg = infobatch_cfg(Path(args.out) / 'work', launcher='pytorch')
runner = Runner.from_cfg(Config(cfg))
rec = RecordPlans()
runner.register_hook(rec)
runner.train()
torch.save(
    {
        'model': runner.model.module.state_dict(),
        'plans': rec.plans,
        'scores': runner.train_dataloader.sampler.info.scores,
    },
    Path(args.out) / f'rank{dist.get_rank()}.pt',
)
close_process_group()

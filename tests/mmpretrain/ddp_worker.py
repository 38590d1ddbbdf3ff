"""One rank of a 2-rank gloo run of mmpretrain's tools/train.py
(``--launcher pytorch``) on an AUSAM config; saves this rank's final
weights and score table as OUT/rank<R>.pt.

mmengine's init_dist calls torch.cuda.set_device, which fails without a
GPU, so the gloo group is started first (as this project's tools do).
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402

from ausam_tasks.engine.dist import close_process_group  # noqa: E402
from tests.mmpretrain.conftest import run_tool  # noqa: E402


@HOOKS.register_module()
class SaveRankStateHook(Hook):
    def __init__(self, out):
        self.out = out

    def after_train(self, runner):
        ow = runner.optim_wrapper
        torch.save(
            dict(
                weights=runner.model.module.state_dict(),
                scores=ow.sample_scores(torch.arange(16)),
                world=dist.get_world_size(),
            ),
            f'{self.out}/rank{dist.get_rank()}.pt',
        )


def main(out, config):
    dist.init_process_group('gloo')
    cfg = Config.fromfile(config)
    cfg.custom_hooks = [dict(type='SaveRankStateHook', out=out)]
    cfg.model_wrapper_cfg = dict(type='SAMDistributedDataParallel')
    cfg.train_cfg.max_epochs = 2
    # Each rank's 8 samples in one batch of 4 per step, 2 steps per epoch.
    cfg.train_dataloader.batch_size = 4
    path = f'{out}/ddp_cfg_{dist.get_rank()}.py'
    cfg.dump(path)
    run_tool(
        'train', path, '--launcher', 'pytorch', '--work-dir', f'{out}/work'
    )


if __name__ == '__main__':
    main(*sys.argv[1:])
    close_process_group()

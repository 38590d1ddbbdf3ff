"""Run by torchrun in test_accumulation.py: one SAM update on 2 gloo ranks
(each rank its own 8 samples), perturbation 'global' and 'local', in one
batch and accumulated over 2; rank 0 also makes the single-process step on
all 16 samples."""

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmengine.optim import build_optim_wrapper  # noqa: E402

from ausam_tasks.engine.dist import (  # noqa: E402
    close_process_group,
    init_cpu_process_group,
)
from tests.methods.test_accumulation import (  # noqa: E402
    SGD,
    closure_for,
    data,
    model,
)

parser = argparse.ArgumentParser()
parser.add_argument('out')
args = parser.parse_args()
init_cpu_process_group('pytorch')
rank = dist.get_rank()
x, y = data()


def update(net, forward, rows_per_batch, **kw):
    ow = build_optim_wrapper(
        net,
        dict(
            type='SAMOptimWrapper',
            rho=0.1,
            optimizer=SGD,
            accumulative_counts=len(rows_per_batch),
            **kw,
        ),
    )
    eps = []
    epsilon = ow.core.epsilon

    def record(params, ctx):
        e = epsilon(params, ctx)
        eps.append(torch.cat([t.flatten() for t in e]))
        return e

    ow.core.epsilon = record
    for rows in rows_per_batch:
        ow.update_params_with_closure(
            closure_for(forward, x, y, rows), rows, net
        )
    return torch.cat([p.detach().flatten() for p in net.parameters()]), eps


out = {}
mine = torch.arange(8 * rank, 8 * rank + 8)
for mode in ('global', 'local'):
    for counts in (1, 2):
        net = model()
        ddp = DDP(net)
        out[mode, counts] = update(
            net, ddp, list(mine.chunk(counts)), perturbation=mode
        )
if rank == 0:
    net = model()
    out['single'] = update(net, net, [torch.arange(16)])
torch.save(out, Path(args.out) / f'rank{rank}.pt')
close_process_group()

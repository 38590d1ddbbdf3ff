"""Run by torchrun in test_accumulation.py: one SAM update on 2 gloo ranks
(each rank its own 8 samples), perturbation 'global' and 'local', in one
batch and accumulated over 2; rank 0 also makes the single-process step on
all 16 samples. Each DDP update counts its gradient exchanges. Last, a
K-SAM update whose top-loss half lies in both micro-batches on rank 0 and
in the first only on rank 1."""

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import (
    allreduce_hook,
)
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
    settings = dict(type='SAMOptimWrapper', rho=0.1, optimizer=SGD)
    settings.update(kw, accumulative_counts=len(rows_per_batch))
    ow = build_optim_wrapper(net, settings)
    eps, exchanges = [], []
    epsilon = ow.core.epsilon

    def record(params, ctx):
        e = epsilon(params, ctx)
        eps.append(torch.cat([t.flatten() for t in e]))
        return e

    def counted(state, bucket):  # the tiny model is one bucket
        exchanges.append(1)
        return allreduce_hook(state, bucket)

    if isinstance(forward, DDP):
        forward.register_comm_hook(None, counted)
    ow.core.epsilon = record
    for rows in rows_per_batch:
        ow.update_params_with_closure(
            closure_for(forward, x, y, rows), rows, net
        )
    weights = torch.cat([p.detach().flatten() for p in net.parameters()])
    return weights, eps, len(exchanges)


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

# K-SAM keeps the 4 highest losses of the rank's 8: on rank 0 two in each
# micro-batch of 4, on rank 1 all four in the first.
with torch.no_grad():
    order = mine[
        F.cross_entropy(model()(x[mine]), y[mine], reduction='none').argsort(
            descending=True
        )
    ]
mine = order[[0, 4, 1, 5, 2, 6, 3, 7]] if rank == 0 else order
for counts in (1, 2):
    net = model()
    out['K-SAM', counts] = update(
        net,
        DDP(net),
        list(mine.chunk(counts)),
        type='KSAMOptimWrapper',
        alpha=0.5,
    )
torch.save(out, Path(args.out) / f'rank{rank}.pt')
close_process_group()

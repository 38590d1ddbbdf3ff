"""Memory and step time of SAM with gradient accumulation, and of 'local'
against 'global' perturbation under gloo DDP.

Part 1: one SAM update of ResNet-18 (CIFAR stem) on a batch of B random
32x32 images, (a) as one batch, (b) as accumulative_counts=4 loader batches
of B/4, (c) as one batch with micro_batch_size=B/4. Each setting runs in
its own process: peak memory is the rise of the process's peak RSS over
its RSS before the first step (CPU), or torch.cuda.max_memory_allocated
(GPU). Step time: median of the timed updates after one warm-up.

Part 2: the same update on 2 gloo ranks (torchrun, one thread each), B/2
images per rank, perturbation 'global' and 'local'; median step time.

    .venv/bin/python benchmarks/accumulation.py            # both parts
    .venv/bin/python benchmarks/accumulation.py --batch 32 --steps 2  # smoke
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

SETTINGS = {
    'batch B': dict(accumulative_counts=1),
    'accumulative_counts=4 (B/4 each)': dict(accumulative_counts=4),
    'micro_batch_size=B/4': dict(micro_batch_size='quarter'),
}


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def setup(batch: int, settings: dict, device, ddp=False, **kw):
    """(model, wrapper, one update's loader batches as closures)."""
    import torch
    import torch.nn.functional as F
    from mmengine.optim import build_optim_wrapper

    import ausam_tasks.engine  # noqa: F401
    from tasks.classification.models import resnet18

    torch.manual_seed(0)
    net = resnet18(num_classes=10, stem='cifar').to(device)
    forward = net
    if ddp:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(net)
    settings = dict(settings)
    if settings.get('micro_batch_size') == 'quarter':
        settings['micro_batch_size'] = batch // 4
    ow = build_optim_wrapper(
        net,
        dict(
            type='SAMOptimWrapper',
            rho=0.05,
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
            **settings,
            **kw,
        ),
    )
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    counts = settings.get('accumulative_counts', 1)
    batches = []
    for rows in torch.arange(batch).chunk(counts):

        def closure(positions=None, with_outputs=False, rows=rows):
            r = rows if positions is None else rows[positions.cpu()]
            return {
                'loss': F.cross_entropy(forward(x[r]), y[r], reduction='none')
            }

        closure.net = forward
        batches.append((closure, rows))
    return net, ow, batches


def timed_updates(net, ow, batches, steps: int, device) -> list:
    import torch

    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize()

    times = []
    for _ in range(steps + 1):  # the first is the warm-up
        sync()
        t = time.perf_counter()
        for closure, rows in batches:
            ow.update_params_with_closure(closure, rows, net)
        sync()
        times.append(time.perf_counter() - t)
    return times[1:]


def one_setting(args) -> dict:
    """Part 1, in this (fresh) process."""
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(
        'cuda' if torch.cuda.is_available() and not args.cpu else 'cpu'
    )
    net, ow, batches = setup(args.batch, SETTINGS[args.setting], device)
    before = rss_bytes()
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = timed_updates(net, ow, batches, args.steps, device)
    out = dict(setting=args.setting, step_s=statistics.median(times))
    if device.type == 'cuda':
        out['peak_mib'] = (torch.cuda.max_memory_allocated() - base) / 2**20
        out['memory'] = 'cuda max_memory_allocated above the model'
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out['peak_mib'] = (peak - before) / 2**20
        out['memory'] = 'peak RSS rise over the RSS before the first step'
    out['device'] = (
        torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'
    )
    return out


def ddp_rank(args) -> None:
    """Part 2, one rank under torchrun."""
    import torch
    import torch.distributed as dist

    from ausam_tasks.engine.dist import (
        close_process_group,
        init_cpu_process_group,
    )

    torch.set_num_threads(1)
    init_cpu_process_group('pytorch')
    rows = {}
    for mode in ('global', 'local'):
        net, ow, batches = setup(
            args.batch // 2,
            {},
            torch.device('cpu'),
            ddp=True,
            perturbation=mode,
        )
        rows[mode] = statistics.median(
            timed_updates(net, ow, batches, args.steps, torch.device('cpu'))
        )
    if dist.get_rank() == 0:
        Path(args.ddp_out).write_text(json.dumps(rows))
    close_process_group()


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]),
    )
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--steps', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--cpu', action='store_true', help='ignore a GPU')
    p.add_argument(
        '--out', type=Path, default=REPO / 'work_dirs/accumulation.json'
    )
    p.add_argument('--setting', help=argparse.SUPPRESS)
    p.add_argument('--ddp-out', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.setting:
        print(json.dumps(one_setting(args)))
        return
    if args.ddp_out:
        ddp_rank(args)
        return
    env = dict(os.environ, PYTHONPATH=str(REPO))
    common = ['--batch', str(args.batch), '--steps', str(args.steps)]
    common += ['--threads', str(args.threads)] + (
        ['--cpu'] if args.cpu else []
    )
    part1 = []
    for name in SETTINGS:
        proc = subprocess.run(
            [sys.executable, __file__, *common, '--setting', name],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        part1.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ddp_json = args.out.with_suffix('.ddp.tmp')
    args.out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--standalone',
            '--nproc_per_node',
            '2',
            __file__,
            *common,
            '--ddp-out',
            str(ddp_json),
        ],
        env=dict(env, OMP_NUM_THREADS='1'),
        check=True,
        capture_output=True,
        text=True,
    )
    part2 = json.loads(ddp_json.read_text())
    ddp_json.unlink()
    import torch

    print(
        f'\nSAM, ResNet-18 (CIFAR stem), batch {args.batch}, '
        f'{part1[0]["device"]}, {args.threads} threads, torch '
        f'{torch.__version__}; median of {args.steps} updates\n'
    )
    print('| setting | peak memory (MiB) | update time (s) |')
    print('| --- | ---: | ---: |')
    for r in part1:
        print(f'| {r["setting"]} | {r["peak_mib"]:.0f} | {r["step_s"]:.2f} |')
    print(
        f'\n2 gloo ranks x {args.batch // 2} images, one thread each: '
        f'update time global {part2["global"]:.2f} s, local '
        f'{part2["local"]:.2f} s (local/global '
        f'{part2["local"] / part2["global"]:.3f})'
    )
    args.out.write_text(
        json.dumps(
            dict(
                benchmark='accumulation',
                torch=torch.__version__,
                batch=args.batch,
                steps=args.steps,
                threads=args.threads,
                memory=part1[0]['memory'],
                part1=part1,
                ddp_step_s=part2,
                date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
            ),
            indent=2,
        )
    )
    print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()

"""Median training-step time of Adam, SAM and AUSAM for SimCC pose estimation.

Model: the pose task's SimCC ResNet-50 (no deconv, 16 joints, split ratio 2)
on 256x256 crops with SimCC Gaussian labels (sigma 6) and the per-sample
KL-discrete loss, Adam as the base optimizer (paper Table 4). Synthetic tensors,
so data loading is excluded: the numbers show the arithmetic cost of each step.
Methods are timed round-robin so that drift in the machine's speed hits all of
them alike. SAM% = SAM's median step time / the method's.

    python benchmarks/pose_step_time.py                       # batch 64, CPU
    python benchmarks/pose_step_time.py --batch-size 16 --steps 3   # short CPU run
    python benchmarks/pose_step_time.py --device cuda
"""
import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ausam_tasks.sam import AUSAM, SAM  # noqa: E402
from tasks.pose_simcc.models import KLDiscreteLoss, ResNet, SimCCHead  # noqa: E402


class SimCCNet(nn.Module):
    def __init__(self, depth, input_size, num_joints=16, split_ratio=2.0):
        super().__init__()
        self.backbone = ResNet(depth=depth)
        self.head = SimCCHead(self.backbone.out_channels, num_joints,
                              (input_size, input_size),
                              (input_size // 32, input_size // 32), split_ratio)

    def forward(self, x):
        return self.head(self.backbone(x))


def simcc_labels(k, joints, bins, sigma, generator):
    centers = torch.rand(k, joints, 1, generator=generator) * bins
    grid = torch.arange(bins).float()
    return torch.exp(-0.5 * ((grid - centers) / sigma) ** 2) / (
        sigma * (2 * torch.pi) ** 0.5)


def make_step(method, alpha, model, batch, loss_fn, dataset_size):
    x, gx, gy, w, idx = batch
    base = torch.optim.Adam(model.parameters(), lr=5e-4)
    if method == 'Adam':
        def step():
            base.zero_grad(set_to_none=True)
            loss_fn(model(x), (gx, gy), w).mean().backward()
            base.step()
        return step

    def closure(pos):
        if pos is None:
            return {'loss_kpt': loss_fn(model(x), (gx, gy), w)}
        pos = pos.to(x.device)
        return {'loss_kpt': loss_fn(model(x[pos]), (gx[pos], gy[pos]), w[pos])}

    if method == 'SAM':
        opt = SAM(base, rho=0.05)
        return lambda: opt.step(closure, model=model)
    opt = AUSAM(base, rho=0.05, alpha=alpha, s_min=0.1, s_max=0.5,
                warmup_epochs=0, init_epochs=0, num_samples=dataset_size)
    # Steady state: every sample already has a score.
    opt.table.update(torch.arange(dataset_size), torch.rand(dataset_size))
    return lambda: opt.step(closure, idx, epoch=10, model=model)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--input-size', type=int, default=256)
    ap.add_argument('--depth', type=int, default=50)
    ap.add_argument('--steps', type=int, default=5, help='timed steps each')
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--alphas', default='0.5')
    ap.add_argument('--threads', type=int, default=0,
                    help='torch CPU threads (0: leave default)')
    ap.add_argument('--out', default='work_dirs/benchmarks/pose_step_time.json')
    args = ap.parse_args()
    if args.input_size % 32:
        ap.error(f'--input-size {args.input_size} must be a multiple of 32 '
                 '(the ResNet stride)')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = SimCCNet(args.depth, args.input_size).to(device)
    k, bins = args.batch_size, int(args.input_size * 2.0)
    batch = (torch.randn(k, 3, args.input_size, args.input_size).to(device),
             simcc_labels(k, 16, bins, 6.0, gen).to(device),
             simcc_labels(k, 16, bins, 6.0, gen).to(device),
             torch.ones(k, 16, device=device),
             torch.arange(k))
    loss_fn = KLDiscreteLoss(use_target_weight=True)
    methods = [('Adam', None), ('SAM', None)] + [
        (f'AUSAM-{a}', float(a)) for a in args.alphas.split(',')]
    state = {n: model.state_dict() for n, _ in methods}
    steps = {}
    for name, alpha in methods:
        model.load_state_dict(state[name])
        steps[name] = make_step(name.split('-')[0], alpha, model, batch,
                                loss_fn, dataset_size=4 * k)
    sync = (torch.cuda.synchronize if device.type == 'cuda' else lambda: None)
    times = {n: [] for n, _ in methods}
    model.train()
    for rep in range(args.warmup + args.steps):
        for name, _ in methods:
            sync()
            t0 = time.perf_counter()
            steps[name]()
            sync()
            if rep >= args.warmup:
                times[name].append(time.perf_counter() - t0)
        print(f'round {rep + 1}/{args.warmup + args.steps} done',
              file=sys.stderr)
    sam = statistics.median(times['SAM'])
    rows = []
    for name, _ in methods:
        med = statistics.median(times[name])
        rows.append(dict(method=name, median_s=med, sam_pct=100 * sam / med,
                         times_s=times[name]))
    dev = (torch.cuda.get_device_name(device) if device.type == 'cuda' else
           f'{platform.processor() or platform.machine()}, '
           f'{torch.get_num_threads()} threads')
    print(f'\nSimCC ResNet-{args.depth}, batch {k}, '
          f'{args.input_size}x{args.input_size}, {dev}, '
          f'torch {torch.__version__}, median of {args.steps} steps\n')
    print('| method | median step (s) | SAM% |')
    print('| --- | ---: | ---: |')
    for r in rows:
        print(f"| {r['method']} | {r['median_s']:.3f} | {r['sam_pct']:.0f}% |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(
        benchmark='pose_step_time',
        date=datetime.now(timezone.utc).isoformat(timespec='minutes'),
        device=dev, torch=torch.__version__, model=f'SimCC ResNet-{args.depth}',
        input_size=args.input_size, batch_size=k, steps=args.steps,
        rows=rows), indent=2))
    print(f'\nwrote {out}')


if __name__ == '__main__':
    main()

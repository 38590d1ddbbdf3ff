"""Median training-step time of Adam, SAM and AUSAM for SimCC pose estimation.

Model: the pose task's SimCC ResNet-50 (no deconv, 16 joints, split ratio 2)
on 256x256 crops with SimCC Gaussian labels (sigma 6) and the per-sample
KL-discrete loss, Adam as the base optimizer (paper Table 4). Synthetic
tensors,
so data loading is excluded: the numbers show the arithmetic cost of each step.
Methods are timed round-robin so that drift in the machine's speed hits all of
them alike. SAM% = SAM's median step time / the method's.

    python benchmarks/pose_step_time.py                       # batch 64, CPU
    python benchmarks/pose_step_time.py --batch-size 16 --steps 3  # CPU
    python benchmarks/pose_step_time.py --device cuda
"""

import argparse

import torch
from timing import device_name, method_steps, report, time_round_robin
from torch import nn

from tasks.pose_simcc.models import KLDiscreteLoss, ResNet, SimCCHead  # noqa: E402,I001


class SimCCNet(nn.Module):
    def __init__(self, depth, input_size, num_joints=16, split_ratio=2.0):
        super().__init__()
        self.backbone = ResNet(depth=depth)
        self.head = SimCCHead(
            self.backbone.out_channels,
            num_joints,
            (input_size, input_size),
            (input_size // 32, input_size // 32),
            split_ratio,
        )

    def forward(self, x):
        return self.head(self.backbone(x))


def simcc_labels(k, joints, bins, sigma, generator):
    centers = torch.rand(k, joints, 1, generator=generator) * bins
    grid = torch.arange(bins).float()
    return torch.exp(-0.5 * ((grid - centers) / sigma) ** 2) / (
        sigma * (2 * torch.pi) ** 0.5
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--input-size', type=int, default=256)
    ap.add_argument('--depth', type=int, default=50)
    ap.add_argument('--steps', type=int, default=5, help='timed steps each')
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--alphas', default='0.5')
    ap.add_argument(
        '--threads',
        type=int,
        default=0,
        help='torch CPU threads (0: leave default)',
    )
    ap.add_argument(
        '--out', default='work_dirs/benchmarks/pose_step_time.json'
    )
    args = ap.parse_args()
    if args.input_size % 32:
        ap.error(
            f'--input-size {args.input_size} must be a multiple of 32 '
            '(the ResNet stride)'
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = SimCCNet(args.depth, args.input_size).to(device).train()
    k, bins = args.batch_size, int(args.input_size * 2.0)
    x = torch.randn(k, 3, args.input_size, args.input_size).to(device)
    gx = simcc_labels(k, 16, bins, 6.0, gen).to(device)
    gy = simcc_labels(k, 16, bins, 6.0, gen).to(device)
    w = torch.ones(k, 16, device=device)
    loss_fn = KLDiscreteLoss(use_target_weight=True)

    def closure(pos):
        if pos is None:
            return {'loss_kpt': loss_fn(model(x), (gx, gy), w)}
        pos = pos.to(device)
        return {'loss_kpt': loss_fn(model(x[pos]), (gx[pos], gy[pos]), w[pos])}

    steps = method_steps(
        model,
        'Adam',
        lambda: torch.optim.Adam(model.parameters(), lr=5e-4),
        closure,
        torch.arange(k),
        [float(a) for a in args.alphas.split(',')],
        dataset_size=4 * k,
    )
    times = time_round_robin(steps, args.warmup, args.steps, device)
    dev = device_name(device)
    report(
        times,
        f'SimCC ResNet-{args.depth}, batch {k}, '
        f'{args.input_size}x{args.input_size}, {dev}, torch '
        f'{torch.__version__}, median of {args.steps} steps',
        args.out,
        benchmark='pose_step_time',
        device=dev,
        model=f'SimCC ResNet-{args.depth}',
        input_size=args.input_size,
        batch_size=k,
        steps=args.steps,
    )


if __name__ == '__main__':
    main()

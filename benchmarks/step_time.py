"""Median training-step time of SGD, SAM, AUSAM, K-SAM, LookSAM and RST.

Model: ResNet-18 with the CIFAR stem (3x3 conv, no max-pool; 11,173,962
parameters at 10 classes), 32x32 inputs, batch 128. Plain PyTorch: runs on a
machine without mmengine. Synthetic tensors, so data loading is excluded.
Methods are timed round-robin. SAM% = SAM's time / the method's.

    python benchmarks/step_time.py                 # CPU
    python benchmarks/step_time.py --device cuda   # GPU
"""

import argparse

import torch
import torch.nn.functional as F
import torchvision
from timing import device_name, method_steps, report, time_round_robin
from torch import nn


def cifar_resnet18(num_classes=10):
    m = torchvision.models.resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--steps', type=int, default=7, help='timed steps each')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--alphas', default='0.4,0.5,0.6,0.7,1.0')
    ap.add_argument(
        '--threads',
        type=int,
        default=0,
        help='torch CPU threads (0: leave default)',
    )
    ap.add_argument('--channels-last', action='store_true')
    ap.add_argument('--out', default='work_dirs/benchmarks/step_time.json')
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    fmt = (
        torch.channels_last if args.channels_last else torch.contiguous_format
    )
    model = cifar_resnet18().to(device, memory_format=fmt).train()
    k = args.batch_size
    x = torch.randn(k, 3, 32, 32, device=device).to(memory_format=fmt)
    y = torch.randint(0, 10, (k,), device=device)

    def closure(pos, with_outputs=False):
        xb, yb = (
            (x, y) if pos is None else (x[pos.to(device)], y[pos.to(device)])
        )
        logits = model(xb)
        losses = {'loss': F.cross_entropy(logits, yb, reduction='none')}
        return (losses, logits) if with_outputs else losses

    steps = method_steps(
        model,
        'SGD',
        lambda: torch.optim.SGD(
            model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4
        ),
        closure,
        torch.arange(k),
        [float(a) for a in args.alphas.split(',')],
        dataset_size=4 * k,
        outputs_closure=closure,
    )
    times = time_round_robin(steps, args.warmup, args.steps, device)
    dev = device_name(device)
    report(
        times,
        f'ResNet-18 (CIFAR stem), batch {k}, 32x32, {dev}, torch '
        f'{torch.__version__}, median of {args.steps} steps',
        args.out,
        benchmark='step_time',
        device=dev,
        batch_size=k,
        steps=args.steps,
    )


if __name__ == '__main__':
    main()

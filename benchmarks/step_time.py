"""Median training-step time of SGD, SAM and AUSAM at several alphas.

Model: ResNet-18 with the CIFAR stem (3x3 conv, no max-pool; 11,173,962
parameters at 10 classes), 32x32 inputs, batch 128. Plain PyTorch: runs on a
machine without mmengine. Methods are timed round-robin so that drift in the
machine's speed hits all of them alike. SAM% = SAM's time / the method's.

    python benchmarks/step_time.py                 # CPU
    python benchmarks/step_time.py --device cuda   # GPU
"""
import argparse
import json
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ausam_tasks.sam import AUSAM, SAM  # noqa: E402


def cifar_resnet18(num_classes=10):
    m = torchvision.models.resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def make_step(method, alpha, model, batch, dataset_size):
    x, y, idx = batch
    base = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9,
                           weight_decay=5e-4)
    if method == 'SGD':
        def step():
            base.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            base.step()
        return step

    def closure(pos):
        xb, yb = (x, y) if pos is None else (x[pos.to(x.device)],
                                             y[pos.to(y.device)])
        return {'loss': F.cross_entropy(model(xb), yb, reduction='none')}

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
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--steps', type=int, default=7, help='timed steps each')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--alphas', default='0.4,0.5,0.6,0.7,1.0')
    ap.add_argument('--threads', type=int, default=0,
                    help='torch CPU threads (0: leave default)')
    ap.add_argument('--channels-last', action='store_true')
    ap.add_argument('--out', default='work_dirs/benchmarks/step_time.json')
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = cifar_resnet18().to(device, memory_format=fmt)
    k = args.batch_size
    batch = (torch.randn(k, 3, 32, 32, device=device).to(memory_format=fmt),
             torch.randint(0, 10, (k, ), device=device),
             torch.arange(k))
    methods = [('SGD', None), ('SAM', None)] + [
        (f'AUSAM-{a}', float(a)) for a in args.alphas.split(',')]
    state = {n: model.state_dict() for n, _ in methods}
    steps = {}
    for name, alpha in methods:
        model.load_state_dict(state[name])
        steps[name] = make_step(name.split('-')[0], alpha, model, batch,
                                dataset_size=4 * k)
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
    print(f'\nResNet-18 (CIFAR stem), batch {k}, 32x32, {dev}, '
          f'torch {torch.__version__}, median of {args.steps} steps\n')
    print('| method | median step (ms) | SAM% |')
    print('| --- | ---: | ---: |')
    for r in rows:
        print(f"| {r['method']} | {1000 * r['median_s']:.1f} | "
              f"{r['sam_pct']:.0f}% |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(
        benchmark='step_time', date=str(date.today()), device=dev,
        torch=torch.__version__, batch_size=k, steps=args.steps, rows=rows),
        indent=2))
    print(f'\nwrote {out}')


if __name__ == '__main__':
    main()

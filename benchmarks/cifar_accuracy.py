"""Accuracy of SGD, SAM, AUSAM-0.5 and SAM+Random-0.5 on real CIFAR-10 images.

CPU mode (default) is sized for a laptop: a narrow ResNet-20, a class-balanced
subset of the CIFAR-10 JPEGs (tools/data_root.py; or any ``--data-root`` image
folder), a fixed held-out split, a few epochs, several seeds. ``--preset
gpu-full`` runs the paper-sized comparison instead (ResNet-18, 45k/5k split,
200 epochs) on ``--device cuda``.

Plain PyTorch around the toolkit's core (``ausam_tasks.sam``), the
classification models and the batch augmentation (crop 4 px, flip, Cutout 16 on
the device), so it runs without mmengine's Runner. Prints a markdown table of
mean +- std accuracy and training time, writes JSON and a plot.

    .venv/bin/python benchmarks/cifar_accuracy.py \\
        --out work_dirs/cifar_accuracy/results.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import CIFAR_MEAN, CIFAR_STD, REPO, cifar10_folder

from ausam_tasks.sam import AUSAM, SAM  # noqa: E402
from tasks.classification import augment  # noqa: E402
from tasks.classification.datasets import ImageFolder  # noqa: E402
from tasks.classification.models import cifar_resnet, resnet18  # noqa: E402
from tasks.classification.transforms import read_image  # noqa: E402
from tools.plot import save_curves  # noqa: E402

PRESETS = {
    'cpu': dict(
        model='cifar_resnet',
        depth=20,
        width=8,
        train_per_class=500,
        holdout_per_class=500,
        epochs=8,
        seeds=[0, 1, 2],
        eval_every=2,
        warmup_epochs=2,
        init_epochs=1,
    ),
    'gpu-full': dict(
        model='resnet18',
        depth=18,
        width=64,
        train_per_class=None,
        holdout_per_class=500,
        epochs=200,
        seeds=[0, 1, 2],
        eval_every=10,
        warmup_epochs=30,
        init_epochs=1,
    ),
}


def parse_method(name: str) -> dict:
    """'sgd', 'sam', 'ausam-0.5' or 'sam-random-0.5'."""
    if name in ('sgd', 'sam'):
        return dict(kind=name)
    for prefix, selector in (('ausam-', 'adlp'), ('sam-random-', 'uniform')):
        if name.startswith(prefix):
            return dict(
                kind='ausam',
                alpha=float(name[len(prefix) :]),
                selector=selector,
            )
    raise SystemExit(
        f'unknown method {name!r}: use sgd, sam, ausam-<alpha> or '
        f'sam-random-<alpha>'
    )


def load_images(
    root: Path, part: str, args
) -> tuple[torch.Tensor, torch.Tensor]:
    ds = ImageFolder(
        str(root),
        part=part,
        holdout_per_class=args.holdout_per_class,
        train_per_class=args.train_per_class,
        split_seed=0,
        lazy_init=False,
    )
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    x = torch.from_numpy(
        np.stack([read_image(d['img_path']) for d in infos])
    ).permute(0, 3, 1, 2)
    return x.contiguous(), torch.tensor([d['gt_label'] for d in infos])


def build_model(args, num_classes: int) -> torch.nn.Module:
    if args.model == 'resnet18':
        return resnet18(num_classes)
    return cifar_resnet(args.depth, args.width, num_classes)


def prepare(
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    train: bool,
    cutout: int = 16,
) -> torch.Tensor:
    if train:
        x = augment.random_flip(augment.random_crop(x, 4), 0.5)
    x = (x.float() - mean) / std
    return augment.cutout(x, cutout) if train and cutout > 0 else x


@torch.no_grad()
def evaluate(model, x, y, mean, std, device, batch=500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        logits = model(prepare(x[i : i + batch].to(device), mean, std, False))
        correct += (logits.argmax(1).cpu() == y[i : i + batch]).sum().item()
    model.train()
    return 100.0 * correct / len(x)


def train_one(method: str, seed: int, data, args, device) -> dict:
    spec = parse_method(method)
    xtr, ytr, xho, yho = data
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    mean = torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=device).view(1, 3, 1, 1)
    model = build_model(args, int(ytr.max()) + 1).to(device)
    base = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4
    )
    steps_per_epoch = (
        len(xtr) // args.batch_size
    )  # drop the last partial batch
    total = steps_per_epoch * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(
        base, lambda s: 0.5 * (1 + math.cos(math.pi * s / total))
    )
    if spec['kind'] == 'sam':
        opt = SAM(base, rho=args.rho)
    elif spec['kind'] == 'ausam':
        # SAM+Random has no scores to build, so it skips the full-SAM scoring
        # epoch.
        init = args.init_epochs if spec['selector'] == 'adlp' else 0
        opt = AUSAM(
            base,
            rho=args.rho,
            alpha=spec['alpha'],
            s_min=0.1,
            s_max=args.s_max,
            warmup_epochs=args.warmup_epochs,
            init_epochs=init,
            selector=spec['selector'],
            num_samples=len(xtr),
            seed=seed,
        )
    curve, used, seen, train_time = [], 0, 0, 0.0
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr), generator=g)
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch_size : (s + 1) * args.batch_size]
            x = prepare(
                xtr[idx].to(device, non_blocking=True),
                mean,
                std,
                True,
                args.cutout,
            )
            y = ytr[idx].to(device, non_blocking=True)
            if spec['kind'] == 'sgd':
                base.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                base.step()
                used += len(idx)
            else:

                def closure(pos):
                    xb, yb = (
                        (x, y)
                        if pos is None
                        else (x[pos.to(device)], y[pos.to(device)])
                    )
                    return {
                        'loss': F.cross_entropy(
                            model(xb), yb, reduction='none'
                        )
                    }

                if spec['kind'] == 'sam':
                    res = opt.step(closure, model=model)
                else:
                    res = opt.step(closure, idx, epoch=epoch, model=model)
                used += (
                    len(idx) if res.positions is None else len(res.positions)
                )
            seen += len(idx)
            sched.step()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        train_time += time.perf_counter() - t0
        if (epoch + 1) % args.eval_every == 0 or epoch + 1 == args.epochs:
            acc = evaluate(model, xho, yho, mean, std, device)
            curve.append((epoch + 1, acc))
            print(
                f'  {method:>15} seed {seed} epoch '
                f'{epoch + 1:>3}/{args.epochs}  '
                f'held-out acc {acc:6.2f}  train time {train_time:7.1f}s',
                flush=True,
            )
    # Accuracy on the (unaugmented) training images: tells under- from
    # overfitting.
    train_acc = evaluate(model, xtr, ytr, mean, std, device)
    return dict(
        method=method,
        seed=seed,
        accuracy=curve[-1][1],
        train_accuracy=train_acc,
        curve=curve,
        train_time_s=train_time,
        sam_fraction=used / seen,
    )


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument('--preset', choices=sorted(PRESETS), default='cpu')
    p.add_argument(
        '--data-root',
        type=Path,
        default=None,
        help='image folder root/<class>/*.jpg (default: the shared CIFAR-10 '
        'JPEGs, extracted once)',
    )
    p.add_argument(
        '--methods',
        nargs='+',
        default=['sgd', 'sam', 'ausam-0.5', 'sam-random-0.5'],
    )
    p.add_argument('--seeds', nargs='+', type=int)
    p.add_argument('--epochs', type=int)
    p.add_argument('--train-per-class', type=int)
    p.add_argument('--holdout-per-class', type=int)
    p.add_argument('--width', type=int)
    p.add_argument('--depth', type=int)
    p.add_argument('--eval-every', type=int)
    p.add_argument('--warmup-epochs', type=float)
    p.add_argument('--init-epochs', type=int)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--lr', type=float, default=0.1)
    p.add_argument('--rho', type=float, default=0.05)
    p.add_argument('--s-max', type=float, default=0.5)
    p.add_argument(
        '--cutout',
        type=int,
        default=16,
        help='Cutout square size in px for training batches (0: no Cutout; '
        'crop + flip stay on)',
    )
    p.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu'
    )
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch intra-op threads (CPU)',
    )
    p.add_argument(
        '--out',
        type=Path,
        default=REPO / 'work_dirs' / 'cifar_accuracy' / 'results.json',
    )
    args = p.parse_args(argv)
    for k, v in PRESETS[args.preset].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    root = args.data_root or cifar10_folder()
    t0 = time.perf_counter()
    data = (
        *load_images(root, 'train', args),
        *load_images(root, 'holdout', args),
    )
    print(
        f'data: {len(data[0])} training / {len(data[2])} held-out images from '
        f'{root} '
        f'({time.perf_counter() - t0:.1f}s to decode)',
        flush=True,
    )

    runs = []
    for seed in args.seeds:
        for method in args.methods:
            runs.append(train_one(method, seed, data, args, device))

    summary = []
    sam_time = None
    for method in args.methods:
        rs = [r for r in runs if r['method'] == method]
        accs, times = (
            [r['accuracy'] for r in rs],
            [r['train_time_s'] for r in rs],
        )
        row = dict(
            method=method,
            acc_mean=statistics.mean(accs),
            acc_std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
            train_acc_mean=statistics.mean(r['train_accuracy'] for r in rs),
            time_mean_s=statistics.mean(times),
            sam_fraction=statistics.mean(r['sam_fraction'] for r in rs),
        )
        if method == 'sam':
            sam_time = row['time_mean_s']
        summary.append(row)
    for row in summary:
        row['sam_pct'] = (
            100.0 * sam_time / row['time_mean_s'] if sam_time else None
        )

    net = (
        'ResNet-18'
        if args.model == 'resnet18'
        else f'ResNet-{args.depth} (width {args.width})'
    )
    print(
        f'\n{net}, {len(data[0])} train / {len(data[2])} held-out CIFAR-10 '
        f'images, {args.epochs} epochs, '
        f'batch {args.batch_size}, seeds {args.seeds}, device {device}\n'
    )
    print(
        '| method | held-out top-1 (%) | train-set top-1 (%) | train time / '
        'run (s) | SAM% | '
        'fraction of batch trained |'
    )
    print('| --- | --- | --- | --- | --- | --- |')
    for r in summary:
        pct = f'{r["sam_pct"]:.0f}%' if r['sam_pct'] else 'n/a'
        print(
            f'| {r["method"]} | {r["acc_mean"]:.2f} ± {r["acc_std"]:.2f} | '
            f'{r["train_acc_mean"]:.1f} | '
            f'{r["time_mean_s"]:.1f} | {pct} | '
            f'{r["sam_fraction"]:.2f} |'
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(
        preset=args.preset,
        model=net,
        epochs=args.epochs,
        seeds=args.seeds,
        batch_size=args.batch_size,
        lr=args.lr,
        rho=args.rho,
        s_max=args.s_max,
        cutout=args.cutout,
        warmup_epochs=args.warmup_epochs,
        init_epochs=args.init_epochs,
        train_images=len(data[0]),
        holdout_images=len(data[2]),
        device=str(device),
        threads=torch.get_num_threads(),
        machine=platform.platform(),
        torch=torch.__version__,
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
    )
    args.out.write_text(
        json.dumps(dict(meta=meta, summary=summary, runs=runs), indent=2)
    )
    curves = {}
    for method in args.methods:
        rs = [r for r in runs if r['method'] == method]
        epochs = [e for e, _ in rs[0]['curve']]
        accs = np.array([[a for _, a in r['curve']] for r in rs])
        curves[method] = (epochs, accs.mean(0), accs.std(0))
    save_curves(
        args.out.with_suffix('.png'),
        [('epoch', 'held-out top-1 (%)', curves)],
        title=net,
    )
    print(f'\nwrote {args.out} and {args.out.with_suffix(".png")}')


if __name__ == '__main__':
    main()

"""Time per training epoch, data loading included: SGD, SAM and AUSAM-0.5, with
the CPU (albumentations in dataloader workers) and the batch (on-device)
augmentation paths.

Real images through the real stack: ImageFolder over the CIFAR-10 JPEGs
(../shared/data, extracted once into data/, or ``--data-root``), a torch
DataLoader with workers, the classification pipeline and ClsDataPreprocessor,
ImageClassifier, and the mmengine optimizer wrappers' own train_step (what the
Runner calls each iteration). For AUSAM the timed epochs come after its
full-SAM scoring epoch (init_epochs=1), i.e. the steady state of a 200-epoch
run.

    .venv/bin/python benchmarks/epoch_time.py \\
        --out work_dirs/epoch_time/results.json
    .venv/bin/python benchmarks/epoch_time.py --device cuda \\
        --model resnet18 --images 50000 --workers 8

Prints a markdown table (SAM% = SAM's epoch time / the method's, within one
augmentation path) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from common import CIFAR_MEAN, CIFAR_STD, REPO, cifar10_folder
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import tasks.classification  # noqa: E402,F401
from tasks.classification.datasets import ImageFolder  # noqa: E402
from tasks.classification.registry import MODELS  # noqa: E402

SGD = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)
METHODS = {
    'SGD': dict(type='OptimWrapper', optimizer=SGD),
    'SAM': dict(type='SAMOptimWrapper', rho=0.05, optimizer=SGD),
    'AUSAM-0.5': dict(
        type='AUSAMOptimWrapper',
        rho=0.05,
        alpha=0.5,
        s_min=0.1,
        s_max=0.5,
        warmup_epochs=0,
        init_epochs=1,
        optimizer=SGD,
    ),
}
AUG = dict(padding=4, flip_prob=0.5, cutout_size=16)


def build(path: str, method: str, args, num_classes: int):
    if path == 'batch':
        pipeline = [dict(type='LoadClsImage'), dict(type='PackClsInputs')]
        pre = dict(
            type='ClsDataPreprocessor',
            mean=CIFAR_MEAN,
            std=CIFAR_STD,
            batch_augment=AUG,
        )
    else:
        pipeline = [
            dict(type='LoadClsImage'),
            dict(
                type='AlbuClsAugment',
                train=True,
                mean=CIFAR_MEAN,
                std=CIFAR_STD,
                **AUG,
            ),
            dict(type='PackClsInputs'),
        ]
        pre = dict(type='ClsDataPreprocessor')
    dataset = ImageFolder(
        str(args.data_root),
        part='train',
        holdout_per_class=0,
        train_per_class=args.images // num_classes,
        pipeline=pipeline,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        collate_fn=pseudo_collate,
        persistent_workers=args.workers > 0,
        pin_memory=args.device == 'cuda',
    )
    net = (
        dict(type='resnet18', num_classes=num_classes)
        if args.model == 'resnet18'
        else dict(
            type='cifar_resnet',
            depth=args.depth,
            width=args.width,
            num_classes=num_classes,
        )
    )
    model = MODELS.build(
        dict(type='ImageClassifier', net=net, data_preprocessor=pre)
    ).to(args.device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optim_wrapper = build_optim_wrapper(model, METHODS[method])
    return dataset, loader, model, optim_wrapper


def run_epoch(
    loader,
    model,
    optim_wrapper,
    epoch: int,
    iters_per_epoch: int,
    total_epochs: int,
) -> float:
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', epoch)
    hub.update_info('max_epochs', total_epochs)
    hub.update_info('max_iters', iters_per_epoch * total_epochs)
    model.train()
    t0 = time.perf_counter()
    for i, data in enumerate(loader):
        hub.update_info('iter', epoch * iters_per_epoch + i)
        model.train_step(data, optim_wrapper)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def data_only_epoch(loader, model) -> float:
    t0 = time.perf_counter()
    for data in loader:
        model.data_preprocessor(data, True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        '--data-root',
        type=Path,
        default=None,
        help='image folder (default: shared CIFAR-10 JPEGs)',
    )
    p.add_argument(
        '--images',
        type=int,
        default=5120,
        help='training images per epoch (class-balanced)',
    )
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument(
        '--epochs',
        type=int,
        default=2,
        help='timed epochs per run (after one warm-up epoch)',
    )
    p.add_argument(
        '--model', choices=['cifar_resnet', 'resnet18'], default='cifar_resnet'
    )
    p.add_argument('--depth', type=int, default=20)
    p.add_argument('--width', type=int, default=16)
    p.add_argument(
        '--paths',
        nargs='+',
        default=['cpu', 'batch'],
        choices=['cpu', 'batch'],
    )
    p.add_argument(
        '--methods', nargs='+', default=list(METHODS), choices=list(METHODS)
    )
    p.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu'
    )
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch intra-op threads in the main process',
    )
    p.add_argument('--channels-last', action='store_true')
    p.add_argument(
        '--out',
        type=Path,
        default=REPO / 'work_dirs' / 'epoch_time' / 'results.json',
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
    args.data_root = args.data_root or cifar10_folder()
    num_classes = len(
        [d for d in Path(args.data_root).iterdir() if d.is_dir()]
    )
    DefaultScope.get_instance('epoch_time', scope_name='tasks.classification')

    rows = []
    for path in args.paths:
        for method in args.methods:
            torch.manual_seed(0)
            dataset, loader, model, ow = build(path, method, args, num_classes)
            iters = len(loader)
            total = args.epochs + 1
            run_epoch(
                loader, model, ow, 0, iters, total
            )  # warm-up; AUSAM's scoring epoch
            times = [
                run_epoch(loader, model, ow, e, iters, total)
                for e in range(1, total)
            ]
            data_t = (
                data_only_epoch(loader, model)
                if method == args.methods[0]
                else None
            )
            row = dict(
                path=path,
                method=method,
                epoch_s=statistics.median(times),
                epochs_s=times,
                images=iters * args.batch_size,
                data_only_epoch_s=data_t,
            )
            rows.append(row)
            extra = (
                f', data loading alone {data_t:.1f}s'
                if data_t is not None
                else ''
            )
            print(
                f'  {path:>5} path {method:>9}: {row["epoch_s"]:.1f}s per '
                f'epoch '
                f'({row["images"] / row["epoch_s"]:.0f} img/s){extra}',
                flush=True,
            )
            del loader
    for row in rows:
        sam = next(
            (
                r['epoch_s']
                for r in rows
                if r['path'] == row['path'] and r['method'] == 'SAM'
            ),
            None,
        )
        row['sam_pct'] = 100.0 * sam / row['epoch_s'] if sam else None

    net = (
        'ResNet-18'
        if args.model == 'resnet18'
        else f'ResNet-{args.depth} (width {args.width})'
    )
    print(
        f'\n{net}, {rows[0]["images"]} CIFAR-10 JPEGs per epoch, batch '
        f'{args.batch_size}, '
        f'{args.workers} dataloader workers, device {args.device}, '
        f'{torch.get_num_threads()} torch threads\n'
    )
    print(
        '| augmentation path | method | epoch time (s) | images/s | SAM% | '
        'data loading alone (s) |'
    )
    print('| --- | --- | --- | --- | --- | --- |')
    for r in rows:
        pct = f'{r["sam_pct"]:.0f}%' if r['sam_pct'] else 'n/a'
        d = (
            f'{r["data_only_epoch_s"]:.1f}'
            if r['data_only_epoch_s'] is not None
            else ''
        )
        print(
            f'| {r["path"]} | {r["method"]} | {r["epoch_s"]:.2f} | '
            f'{r["images"] / r["epoch_s"]:.0f} | {pct} | {d} |'
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: str(v) for k, v in vars(args).items()}
    meta.update(
        machine=platform.platform(),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
        gpu=torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else None,
    )
    args.out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()

"""Demo: SGD vs SAM vs AUSAM-0.5 on a small CNN, offline, through mmengine's
Runner.

Uses the real classification pieces
(configs/classification/resnet18_*_cifar10.py with a narrow ResNet-20 swapped
in, the ImageFolder dataset, the batch augmentation data preprocessor, the
SAM/AUSAM optimizer wrappers). Data, in order of preference:
  --data-root DIR            an image folder DIR/<class>/*.jpg
  real CIFAR-10 JPEGs        from tools/data_root.py ($AUSAM_DATA_ROOT or
                             ../shared/data); a class-balanced subset is
                             extracted once into data/
  generated                  a synthetic 10-class image folder written to
                             data/ (no download needed)
Prints accuracy, training time and SAM% side by side, writes
<work-dir>/summary.json and a plot.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import tasks.classification  # noqa: E402,F401
from tasks.classification.data_prep import (  # noqa: E402
    synthetic_images,
    write_image_folder,
)
from tools.data_root import cifar10_jpg_archive, cifar10_jpg_train  # noqa: E402
from tools.plot import save_curves  # noqa: E402

CONFIGS = {
    'SGD': 'resnet18_sgd_1xb128_cifar10.py',
    'SAM': 'resnet18_sam_1xb128_cifar10.py',
    'AUSAM-0.5': 'resnet18_ausam-a0.5_1xb128_cifar10.py',
}


@HOOKS.register_module(force=True)
class DemoProgressHook(Hook):
    """One line per epoch, and the curves for the plot."""

    priority = 'LOWEST'

    def __init__(self, label: str = ''):
        self.label = label
        self.train_time = 0.0
        self.curve = []

    def before_train_epoch(self, runner):
        self._t = time.perf_counter()

    def after_train_epoch(self, runner):
        self.train_time += time.perf_counter() - self._t

    def after_val_epoch(self, runner, metrics=None):
        acc = (metrics or {}).get('accuracy/top1', float('nan'))
        loss = (
            runner.message_hub.get_scalar('train/loss').mean(10)
            if 'train/loss' in runner.message_hub.log_scalars
            else float('nan')
        )
        self.curve.append(
            dict(
                epoch=runner.epoch,
                time=self.train_time,
                acc=acc,
                loss=float(loss),
            )
        )
        print(
            f'  [{self.label:>9}] epoch {runner.epoch:>2}/{runner.max_epochs} '
            f' train loss {loss:.3f}  '
            f'val top-1 {acc:5.1f}%  train time {self.train_time:6.1f}s',
            flush=True,
        )


def find_data(args) -> tuple[Path, str]:
    if args.data_root:
        return Path(args.data_root), f'image folder {args.data_root}'
    per_class = args.train_per_class + args.val_per_class
    archive = cifar10_jpg_archive()
    if archive.is_file():
        return (
            cifar10_jpg_train(per_class),
            f'real CIFAR-10 JPEGs ({per_class} per class from {archive})',
        )
    root = REPO / 'data' / f'synthetic-stripes-{per_class}pc'
    if not (root / '.complete').is_file():
        imgs, labels = synthetic_images(per_class * 10 * 2, 10, seed=0)
        keep = [
            i
            for c in range(10)
            for i in (labels == c).nonzero()[0][:per_class]
        ]
        write_image_folder(root, imgs[keep], labels[keep], ext='.png')
        (root / '.complete').touch()
    return (
        root,
        'generated 10-class stripe images (no CIFAR-10 found; pass '
        '--data-root to use your own)',
    )


# The paper's ResNet-18 / CIFAR-10 row (../shared/docs/ausam-spec.md):
# 200 epochs on all 50,000 images.
PAPER_C10_R18 = {'SGD': 96.23, 'SAM': 96.79, 'AUSAM-0.5': 96.52}
PAPER_SAM_PCT = {'SGD': 170, 'SAM': 100, 'AUSAM-0.5': 132}


def context_line(args) -> str:
    """One line putting the demo's numbers next to the paper's."""
    paper = ', '.join(
        f'{m} {PAPER_C10_R18[m]}% (SAM% {PAPER_SAM_PCT[m]}%)'
        for m in args.methods
    )
    return (
        f'In context: this was {args.epochs} epochs of ResNet-{args.depth} '
        f'(width {args.width}) on {10 * args.train_per_class} images; at 200 '
        f'epochs of ResNet-18 on all 50,000 CIFAR-10 images the paper reports '
        f'{paper}.'
    )


def make_cfg(method: str, data_root: Path, args) -> Config:
    cfg = Config.fromfile(
        str(REPO / 'configs' / 'classification' / CONFIGS[method])
    )
    cfg.model.net = dict(
        type='cifar_resnet', depth=args.depth, width=args.width, num_classes=10
    )
    for key, part in (
        ('train_dataloader', 'train'),
        ('val_dataloader', 'holdout'),
        ('test_dataloader', 'holdout'),
    ):
        dl = cfg[key]
        dl.update(
            batch_size=args.batch_size,
            num_workers=args.workers,
            persistent_workers=args.workers > 0,
        )
        dl.dataset = dict(
            type='ImageFolder',
            data_root=str(data_root),
            part=part,
            holdout_per_class=args.val_per_class,
            train_per_class=args.train_per_class,
            pipeline=dl.dataset.pipeline,
        )
    cfg.train_cfg.max_epochs = args.epochs
    cfg.param_scheduler = [
        dict(
            type='CosineAnnealingLR',
            T_max=args.epochs,
            by_epoch=True,
            begin=0,
            end=args.epochs,
            convert_to_iter_based=True,
        )
    ]
    if cfg.optim_wrapper.type == 'AUSAMOptimWrapper':
        # The paper warms s_max up over 30 of 200 epochs; keep that proportion
        # on a short run.
        cfg.optim_wrapper.update(
            warmup_epochs=max(1, round(args.epochs * 0.15)), init_epochs=1
        )
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook',
        interval=args.epochs,
        save_last=True,
        backend_args=dict(backend='atomic_local'),
    )
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**6)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='DemoProgressHook', label=method)
    ]
    cfg.log_level = 'ERROR'
    cfg.randomness = dict(seed=args.seed)
    cfg.work_dir = str(Path(args.work_dir) / method.lower())
    return cfg


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument('--work-dir', default='work_dirs/demo')
    p.add_argument(
        '--data-root',
        default=None,
        help='image folder root/<class>/*.jpg to train on',
    )
    p.add_argument(
        '--methods', nargs='+', default=list(CONFIGS), choices=list(CONFIGS)
    )
    p.add_argument('--epochs', type=int, default=8)
    p.add_argument('--train-per-class', type=int, default=250)
    p.add_argument('--val-per-class', type=int, default=100)
    p.add_argument('--depth', type=int, default=20)
    p.add_argument('--width', type=int, default=8)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--workers', type=int, default=0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch CPU threads (default: torch decides, 1 on a busy machine)',
    )
    args = p.parse_args(argv)
    if (
        args.threads is None
        and hasattr(os, 'getloadavg')
        and os.getloadavg()[0] > (os.cpu_count() or 1)
    ):
        # On a busy machine several intra-op threads spin against other
        # processes (often 5-10x slower per step); one thread is the fast
        # choice there.
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger('mmengine').setLevel(logging.WARNING)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    data_root, what = find_data(args)
    print(
        f'Data: {what}\n  {data_root}: {args.train_per_class} training + '
        f'{args.val_per_class} held-out '
        f'images per class. Model: ResNet-{args.depth} (width {args.width}), '
        f'{args.epochs} epochs, '
        f'batch {args.batch_size}, on '
        f'{"cuda" if torch.cuda.is_available() else "cpu"} '
        f'({torch.get_num_threads()} thread(s)).',
        flush=True,
    )

    results = {}
    for method in args.methods:
        print(f'\n== {method} ==', flush=True)
        runner = Runner.from_cfg(make_cfg(method, data_root, args))
        runner.train()
        hook = next(h for h in runner.hooks if isinstance(h, DemoProgressHook))
        results[method] = dict(
            accuracy=hook.curve[-1]['acc'],
            train_time_s=hook.train_time,
            curve=hook.curve,
        )

    sam_time = results.get('SAM', {}).get('train_time_s')
    print('\n| method | val top-1 (%) | train time (s) | SAM% |')
    print('| --- | --- | --- | --- |')
    for m, r in results.items():
        r['sam_pct'] = (
            100.0 * sam_time / r['train_time_s'] if sam_time else None
        )
        pct = f'{r["sam_pct"]:.0f}%' if r['sam_pct'] else 'n/a'
        print(
            f'| {m} | {r["accuracy"]:.1f} | {r["train_time_s"]:.1f} | {pct} |'
        )
    print(
        "SAM% = SAM training time / the method's (higher is faster). On a "
        'busy CPU times are noisy; '
        'AUSAM-0.5 runs full SAM in its first (scoring) epoch.'
    )
    print(context_line(args))
    (work / 'summary.json').write_text(
        json.dumps(dict(data=what, args=vars(args), results=results), indent=2)
    )

    def curves(x):
        return {
            m: ([c[x] for c in r['curve']], [c['acc'] for c in r['curve']])
            for m, r in results.items()
        }

    save_curves(
        work / 'curves.png',
        [
            ('epoch', 'val top-1 (%)', curves('epoch')),
            ('training time (s)', 'val top-1 (%)', curves('time')),
        ],
        title=f'ResNet-{args.depth} (width {args.width}): {what}',
    )
    print(f'\nWrote {work / "summary.json"} and {work / "curves.png"}')


if __name__ == '__main__':
    main()

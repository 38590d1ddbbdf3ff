"""Demo: SGD vs SAM vs AUSAM-0.5 on a small CNN through mmengine's Runner.

Uses the real classification pieces
(configs/classification/resnet18_*_cifar10.py with a narrow ResNet-20 swapped
in, the ImageFolder dataset, the batch augmentation data preprocessor, the
SAM/AUSAM optimizer wrappers). Data, the first that is there:
  --data-root DIR          an image folder: DIR/train/<class>/ and
                           DIR/val/<class>/, or DIR/<class>/ (a seeded,
                           class-balanced holdout is carved from it)
  CIFAR-10 pickles         torchvision's cifar-10-batches-py/ in the cifar10/
                           folder of tools/data_root.py ($AUSAM_DATA_ROOT, else
                           ../shared/data)
  CIFAR-10 JPEG archive    cifar10/cifar10-jpg-train.tar.gz in that folder
  CIFAR-10 download        torchvision's download (170 MB) into data/cifar10
  generated stand-in       offline only: striped images with 30% symmetric
                           label noise on the training set (clean held-out
                           labels), hard enough that the methods can differ
The chosen images are written once into data/ as DIR/train + DIR/val.
Prints accuracy, training time and SAM% side by side, writes
<work-dir>/summary.json (naming the data source) and a plot.
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import tasks.classification  # noqa: E402,F401
from tasks.classification.data_prep import (  # noqa: E402
    extract_cifar10_jpg,
    synthetic_images,
    write_split_folder,
)
from tools.data_root import (  # noqa: E402
    ENV_VAR,
    cifar10_jpg_archive,
    cifar10_pickles,
)
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


DATA = REPO / 'data'  # git-ignored; the tests point it elsewhere
# The offline stand-in, chosen once so that the methods are not all at the
# ceiling (not tuned for any method): without class colours only the stripes
# tell the class, under pixel noise; a share of the training labels is wrong.
GENERATED = dict(pixel_noise=60.0, class_colours=False)
LABEL_NOISE = 0.3


def from_pickles(folder: Path, name: str, args) -> Path:
    """The first images of each class of the CIFAR-10 training pickles as
    DIR/train + DIR/val, written once into data/<name>-<sizes>."""
    t, v = args.train_per_class, args.val_per_class
    root = DATA / f'{name}-{t}+{v}pc'
    if not (root / '.complete').is_file():
        from tasks.classification.datasets import CIFAR10

        ds = CIFAR10(str(folder), split='train')
        items = [ds.get_data_info(i) for i in range(len(ds))]
        write_split_folder(
            root,
            np.stack([x['img'] for x in items]),
            [x['gt_label'] for x in items],
            t,
            v,
            classes=list(ds.metainfo['classes']),
        )
    return root


def download_cifar10(root: Path) -> None:
    """torchvision's own download (progress bar, checksum) into ``root``."""
    import socket

    import torchvision

    before = socket.getdefaulttimeout()
    # A network that drops packets would otherwise hang for minutes.
    socket.setdefaulttimeout(30)
    try:
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    finally:
        socket.setdefaulttimeout(before)


def standin_images(per_class: int):
    """The stand-in's images and clean labels, ``per_class`` of each."""
    labels = np.tile(np.arange(10), per_class)
    return synthetic_images(
        len(labels), 10, seed=0, labels=labels, **GENERATED
    )


def generated(args) -> Path:
    """The offline stand-in as DIR/train (noisy labels) + DIR/val (clean)."""
    t, v = args.train_per_class, args.val_per_class
    root = DATA / f'generated-{t}+{v}pc-noise{LABEL_NOISE}'
    if not (root / '.complete').is_file():
        imgs, labels = standin_images(t + v)
        write_split_folder(
            root, imgs, labels, t, v, label_noise=LABEL_NOISE, seed=0
        )
    return root


def find_data(args) -> tuple[Path, str, str]:
    """(image folder, source, description) of the first source there."""
    if args.data_root:
        return (
            Path(args.data_root),
            'data-root',
            f'image folder {args.data_root}',
        )
    if cifar10_pickles().is_dir():
        return (
            from_pickles(cifar10_pickles(), 'cifar10-pickles', args),
            'cifar10-pickles',
            f'real CIFAR-10 (pickles from {cifar10_pickles()})',
        )
    archive = cifar10_jpg_archive()
    if archive.is_file():
        train = extract_cifar10_jpg(
            DATA / 'cifar10-jpg',
            archive,
            args.train_per_class,
            args.val_per_class,
        )
        return (
            train.parent,
            'cifar10-jpg',
            f'real CIFAR-10 JPEGs (from {archive})',
        )
    try:
        download_cifar10(DATA / 'cifar10')
    except Exception as e:  # offline, a proxy, a cut-off file: fall back
        print(f'CIFAR-10 download failed ({type(e).__name__}: {e})')
    else:
        return (
            from_pickles(
                DATA / 'cifar10' / 'cifar-10-batches-py',
                'cifar10-download',
                args,
            ),
            'cifar10-download',
            f'real CIFAR-10 (downloaded into {DATA / "cifar10"})',
        )
    print(
        'Using a GENERATED STAND-IN, not CIFAR-10: 10 classes of striped '
        'images (class = stripe angle and width; random colours, pixel noise '
        f'{GENERATED["pixel_noise"]:g}), {LABEL_NOISE:.0%} of the training '
        'labels flipped to a random other class (symmetric label noise); '
        'the held-out labels are clean.\n'
        f'  For real CIFAR-10: set ${ENV_VAR} to a folder holding '
        "cifar10/cifar-10-batches-py/ (torchvision's) or "
        'cifar10/cifar10-jpg-train.tar.gz, or run once with network access '
        '(downloads into data/cifar10), or pass --data-root DIR.'
    )
    return (
        generated(args),
        'generated',
        f'generated stand-in, {LABEL_NOISE:.0%} training label noise',
    )


def dataset_parts(root: Path, args) -> dict:
    """ImageFolder keys of the training and held-out parts of ``root``."""
    if (root / 'train').is_dir() and (root / 'val').is_dir():
        # Taken as they are: with label noise the training classes are
        # not balanced, so a per-class cap would drop images.
        return {
            part: dict(data_root=str(root / sub), part='all')
            for part, sub in (('train', 'train'), ('holdout', 'val'))
        }
    # DIR/<class>/: carve a seeded, class-balanced holdout.
    return {
        part: dict(
            data_root=str(root),
            part=part,
            holdout_per_class=args.val_per_class,
            train_per_class=args.train_per_class,
        )
        for part in ('train', 'holdout')
    }


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


def make_cfg(method: str, parts: dict, args) -> Config:
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
            type='ImageFolder', pipeline=dl.dataset.pipeline, **parts[part]
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
        help='image folder to train on: DIR/train/<class>/ and '
        'DIR/val/<class>/, or DIR/<class>/',
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
    data_root, source, what = find_data(args)
    parts = dataset_parts(data_root, args)
    sizes = (
        f'{args.train_per_class} training + {args.val_per_class} held-out '
        'images per class'
        if parts['train']['part'] == 'train'
        else 'train/ and val/ as they are'
    )
    print(
        f'Data: {what}\n  {data_root}: {sizes}. '
        f'Model: ResNet-{args.depth} (width {args.width}), '
        f'{args.epochs} epochs, '
        f'batch {args.batch_size}, on '
        f'{"cuda" if torch.cuda.is_available() else "cpu"} '
        f'({torch.get_num_threads()} thread(s)).',
        flush=True,
    )

    results = {}
    for method in args.methods:
        print(f'\n== {method} ==', flush=True)
        runner = Runner.from_cfg(make_cfg(method, parts, args))
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
        json.dumps(
            dict(
                data=dict(
                    source=source,
                    what=what,
                    root=str(data_root),
                    label_noise=LABEL_NOISE if source == 'generated' else 0.0,
                ),
                args=vars(args),
                results=results,
            ),
            indent=2,
        )
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

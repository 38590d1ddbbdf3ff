"""Epoch time of SGD, SAM, AUSAM-0.5 and InfoBatch (SGD+Info, SAM+Info)
through the real config and Runner.

The CIFAR-10 ResNet-18 config (``configs/classification/
resnet18_ausam-a0.5_1xb128_cifar10.py``) with its batch (on-device)
augmentation, trained by mmengine's Runner on the CIFAR-10 training JPEGs
(all 50,000 by default), validation and checkpoints off. Epoch 0 is the
warm-up and AUSAM's full-SAM scoring epoch (init_epochs=1); the steady
epochs after it are the ones that count. Times include data loading and the
device synchronises at each epoch's end. InfoBatch's first epoch is whole
(no scores yet); its steady epochs are pruned. ``SGD-per-sample`` is SGD
through the per-sample protocol (PlainOptimWrapper) without InfoBatch: the
wrapper's own cost, apart from the pruning.

    AUSAM_DATA_ROOT=.data python benchmarks/runner_epoch_time.py
    python benchmarks/runner_epoch_time.py --images 200 --batch-size 32 \\
        --model resnet20-w8 --workers 0       # a CPU smoke run
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import REPO, cifar10_folder
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import tasks.classification  # noqa: F401
from ausam_tasks.engine.infobatch import use_infobatch
from tasks.classification.data_prep import extract_cifar10_jpg

CONFIG = REPO / 'configs/classification/resnet18_ausam-a0.5_1xb128_cifar10.py'
NETS = {
    'resnet18': dict(type='resnet18', stem='cifar', num_classes=10),
    'wrn28-10': dict(type='wide_resnet28_10', num_classes=10),
    'resnet20-w8': dict(type='cifar_resnet', depth=20, width=8),
}


class EpochTimer(Hook):
    """Wall time of each training epoch, the device synchronised."""

    priority = 'VERY_LOW'

    def __init__(self):
        self.times, self.samples = [], []

    def _sync(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def before_train_epoch(self, runner) -> None:
        # After the sampler's set_epoch: this epoch's (pruned) length.
        self.samples.append(len(runner.train_dataloader.sampler))
        self._sync()
        self._start = time.perf_counter()

    def after_train_epoch(self, runner) -> None:
        self._sync()
        self.times.append(time.perf_counter() - self._start)


METHODS = ('SGD', 'SAM', 'AUSAM-0.5', 'SGD-per-sample', 'SGD+Info', 'SAM+Info')


def method_wrapper(method: str, ausam: dict, dtype: str) -> dict:
    """The config's AUSAM wrapper, or SAM / SGD with its base optimizer."""
    opt = dict(ausam['optimizer'])
    cast = None if dtype == 'float32' else dtype
    if method == 'SGD':
        if cast is None:
            return dict(type='OptimWrapper', optimizer=opt)
        return dict(type='AmpOptimWrapper', dtype=cast, optimizer=opt)
    plain = dict(type='PlainOptimWrapper', optimizer=opt, dtype=cast)
    sam = dict(type='SAMOptimWrapper', rho=0.05, optimizer=opt, dtype=cast)
    if method == 'SAM':
        return sam
    if method == 'SGD-per-sample':
        return plain
    if method == 'SGD+Info':
        return dict(plain, infobatch_pass='first')
    if method == 'SAM+Info':
        return dict(sam, infobatch_pass='second')
    return dict(ausam, dtype=cast)


def build_cfg(args, method: str, data_root: Path, work_dir: str) -> Config:
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.net = NETS[args.model]
    if args.compile:
        cfg.model.compile = dict(mode=args.compile_mode)
    cfg.optim_wrapper = method_wrapper(
        method, cfg.optim_wrapper.to_dict(), args.dtype
    )
    cfg.train_dataloader.update(
        batch_size=args.batch_size,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
    cfg.train_dataloader.dataset = dict(
        type='ImageFolder',
        data_root=str(data_root),
        part='train',
        holdout_per_class=0,
        train_per_class=args.images // 10,
        pipeline=cfg.train_pipeline,
    )
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.train_cfg.max_epochs = args.epochs
    cfg.param_scheduler[0].update(T_max=args.epochs, end=args.epochs)
    if '+Info' in method:
        use_infobatch(cfg)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 10**6
    cfg.work_dir = work_dir
    cfg.experiment_name = f'epoch_time_{method}_{time.time_ns()}'
    cfg.randomness = dict(seed=0)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    return cfg


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]),
    )
    p.add_argument(
        '--archive',
        type=Path,
        default=None,
        help='CIFAR-10 JPEG .tar.gz (default: $AUSAM_DATA_ROOT/cifar10/, '
        'else ../shared/data/cifar10/)',
    )
    p.add_argument(
        '--extract-to',
        type=Path,
        default=None,
        help='extraction cache with --archive (default: data/cifar10-jpg)',
    )
    p.add_argument('--images', type=int, default=50000)
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--workers', type=int, default=8)
    p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--model', choices=list(NETS), default='resnet18')
    p.add_argument(
        '--dtype', choices=['float32', 'bfloat16'], default='float32'
    )
    p.add_argument('--compile', action='store_true')
    p.add_argument('--compile-mode', default=None)
    p.add_argument('--methods', default='SGD,SAM,AUSAM-0.5')
    p.add_argument(
        '--out', type=Path, default=REPO / 'work_dirs/runner_epoch_time.json'
    )
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error('--epochs must be >= 2: epoch 0 is the warm-up')
    unknown = set(args.methods.split(',')) - set(METHODS)
    if unknown:
        p.error(f'--methods: unknown {sorted(unknown)}')
    return args


def main(argv=None):
    args = parse_args(argv)
    per_class = None if args.images >= 50000 else args.images // 10
    t0 = time.perf_counter()
    if args.archive is None:
        data_root = cifar10_folder(per_class)
    else:
        cache = args.extract_to or REPO / 'data' / 'cifar10-jpg'
        data_root = extract_cifar10_jpg(cache, args.archive, per_class)
    extract_s = time.perf_counter() - t0
    rows = []
    with tempfile.TemporaryDirectory() as work_dir:
        for method in args.methods.split(','):
            cfg = build_cfg(args, method, data_root, work_dir)
            timer = EpochTimer()
            runner = Runner.from_cfg(cfg)
            runner.register_hook(timer)
            runner.train()
            images = len(runner.train_dataloader.dataset)
            steady = statistics.median(timer.times[1:])
            rows.append(
                dict(
                    method=method,
                    epochs_s=timer.times,
                    epoch_samples=timer.samples,
                    steady_epoch_s=steady,
                    images=images,
                    images_per_s=images / steady,
                )
            )
            print(f'{method}: epochs {timer.times}', flush=True)
    sam = next((r['steady_epoch_s'] for r in rows if r['method'] == 'SAM'), 0)
    for r in rows:
        r['sam_pct'] = 100 * sam / r['steady_epoch_s'] if sam else None
    dev = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f'CPU, {torch.get_num_threads()} threads'
    )
    opts = args.dtype + (', compile' if args.compile else '')
    print(
        f'\n{args.model}, {rows[0]["images"]} CIFAR-10 JPEGs per epoch, '
        f'batch {args.batch_size}, {args.workers} workers, {opts}, {dev}, '
        f'Runner; steady = median of epochs 1..{args.epochs - 1}\n'
    )
    print(
        '| method | epoch 0 (s) | steady epoch (s) | trained / epoch '
        '(steady) | dataset images/s | SAM% |'
    )
    print('| --- | ---: | ---: | ---: | ---: | ---: |')
    for r in rows:
        pct = f'{r["sam_pct"]:.0f}%' if r['sam_pct'] else 'n/a'
        trained = statistics.median(r['epoch_samples'][1:])
        print(
            f'| {r["method"]} | {r["epochs_s"][0]:.1f} | '
            f'{r["steady_epoch_s"]:.1f} | {trained:.0f} | '
            f'{r["images_per_s"]:.0f} | {pct} |'
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: str(v) for k, v in vars(args).items()}
    args.out.write_text(
        json.dumps(
            dict(
                benchmark='runner_epoch_time',
                device=dev,
                torch=torch.__version__,
                extract_s=extract_s,
                options=meta,
                rows=rows,
            ),
            indent=2,
        )
    )
    print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()

"""The paper's ResNet-18 / CIFAR-10 / AUSAM-0.5 run on the fast path, timed.

The config ``resnet18_ausam-a0.5_1xb128-fast_cifar10.py`` of
configs/classification (200 epochs, batch 128, Cutout; bf16, CUDA graphs,
data on the device, validation every 10 epochs) trained by mmengine's
Runner on CIFAR pickle batches made once from the JPEG archive
(benchmarks/study's ``prepare_data``: 45,000 training images, 500 per
class held out in place of the official test set, which the shared data
lacks). Writes one JSON:
the time to make the pickles, every epoch's time, the held-out accuracy at
each validation, the total wall time.

    AUSAM_DATA_ROOT=.data python benchmarks/fastpath.py     # on a GPU
    python benchmarks/fastpath.py --smoke                   # CPU, ~1 min
    python benchmarks/fastpath.py --stop-after 15  # first 15 of 200 epochs

With ``--stop-after N`` the JSON's ``extrapolated_s`` estimates the whole
schedule's wall time (first epoch + median steady epoch x the rest + the
mean validation x their number); it is an extrapolation, not a
measurement.

``--smoke``: two epochs of ResNet-8 (width 4) on 200 training and 100
held-out JPEGs, batch 32, on the CPU, the network compiled with
``aot_eager`` (graph capture only; CUDA-graph steps marked as on the
device), bf16 autocast kept.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from common import REPO

CONFIG = (
    REPO / 'configs/classification/resnet18_ausam-a0.5_1xb128-fast_cifar10.py'
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]),
    )
    p.add_argument('--smoke', action='store_true')
    p.add_argument('--device', help="'cpu' hides the GPUs (smoke: cpu)")
    p.add_argument(
        '--epochs',
        type=int,
        help="the schedule's epochs (cosine T_max); default 200 (smoke: 2)",
    )
    p.add_argument(
        '--stop-after',
        type=int,
        help='train only the first N epochs of that schedule (same learning '
        'rates as the full run, resumable to its end with --resume) and '
        'extrapolate its wall time; default: all',
    )
    p.add_argument(
        '--train-per-class',
        type=int,
        help='training JPEGs per class (default all; smoke: 20)',
    )
    p.add_argument(
        '--holdout-per-class',
        type=int,
        help='held-out JPEGs per class (default 500; smoke: 10)',
    )
    p.add_argument(
        '--data-root',
        type=Path,
        help='existing CIFAR pickle batches (skips making them)',
    )
    p.add_argument('--batch-size', type=int, help='default 128 (smoke: 32)')
    p.add_argument(
        '--small',
        action='store_true',
        help='ResNet-8 width 4 instead of ResNet-18 (smoke)',
    )
    p.add_argument(
        '--compile-backend',
        help="e.g. 'aot_eager' (smoke); default: the config's inductor",
    )
    p.add_argument(
        '--resume',
        action='store_true',
        help='continue from the last checkpoint in WORK_DIR, if any',
    )
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--work-dir', type=Path, default=REPO / 'work_dirs' / 'fastpath'
    )
    p.add_argument(
        '--out', type=Path, help='JSON (default WORK_DIR/fastpath.json)'
    )
    args = p.parse_args(argv)
    if args.smoke:
        defaults = dict(
            device='cpu',
            epochs=2,
            train_per_class=20,
            holdout_per_class=10,
            batch_size=32,
            small=True,
            compile_backend='aot_eager',
        )
        for key, value in defaults.items():
            if getattr(args, key) in (None, False):
                setattr(args, key, value)
    args.epochs = args.epochs or 200
    if args.stop_after is None:
        args.stop_after = args.epochs
    if not 1 <= args.stop_after <= args.epochs:
        p.error(
            f'--stop-after {args.stop_after}: must be 1 to --epochs '
            f'({args.epochs}); raise --epochs or lower FASTPATH_EPOCHS'
        )
    if args.holdout_per_class is None:
        args.holdout_per_class = 500
    args.out = args.out or args.work_dir / 'fastpath.json'
    if args.smoke and args.device != 'cpu':
        p.error('--smoke runs on the CPU (--device cpu)')
    return args


def build_cfg(args, data_root: Path):
    from mmengine.config import Config

    cfg = Config.fromfile(str(CONFIG))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.update(data_root=str(data_root), download=False)
    if args.batch_size:
        cfg.train_dataloader.batch_size = args.batch_size
    if args.small:
        cfg.model.net = dict(type='cifar_resnet', depth=8, width=4)
    if args.compile_backend:
        # Another backend takes no CUDA-graph mode; keep the step marking
        # so the smoke run goes through the device's code path.
        cfg.model.compile = dict(
            backend=args.compile_backend,
            dynamic=False,
            recompile_limit=16,
            mark_steps=True,
        )
    if args.epochs != cfg.train_cfg.max_epochs:
        cfg.param_scheduler[0].update(T_max=args.epochs, end=args.epochs)
    # The schedule stays that of --epochs; the loop ends early.
    cfg.train_cfg.max_epochs = args.stop_after
    cfg.work_dir = str(args.work_dir)
    # mmengine resumes from WORK_DIR/last_checkpoint, else starts afresh.
    cfg.resume = args.resume
    cfg.randomness = dict(seed=args.seed)
    cfg.default_hooks.logger.interval = 100
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    t_start = time.perf_counter()
    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    import tasks.classification  # noqa: F401

    t0 = time.perf_counter()
    if args.data_root:
        data_root = args.data_root
    else:
        from study import prepare_data

        # Made once (a marker file), then reused: data_s is ~0 on reruns.
        data_root = prepare_data(
            args.train_per_class,
            args.holdout_per_class,
            cache_root=REPO / 'data' / 'fastpath',
        )
    data_s = time.perf_counter() - t0
    cfg = build_cfg(args, data_root)

    runner = Runner.from_cfg(cfg)
    started = time.perf_counter()

    schedule = args.epochs
    val_interval = cfg.train_cfg.val_interval

    def extrapolate(epoch_s, val_s) -> dict:
        """The wall time of the whole schedule from the epochs run: the
        first epoch (graph capture) + the median steady epoch for each
        other epoch + the mean validation for each validation. An estimate,
        not a measurement."""
        steady = sorted(epoch_s[2:])
        if not steady:
            return dict(extrapolated_s=None)
        vals = schedule // val_interval + bool(schedule % val_interval)
        val = sum(val_s) / len(val_s) if val_s else 0.0
        return dict(
            extrapolated_s=epoch_s[0]
            + steady[len(steady) // 2] * (schedule - 1)
            + val * vals,
            extrapolated_from=dict(
                epochs=len(epoch_s),
                validations=len(val_s),
                schedule_epochs=schedule,
                schedule_validations=vals,
            ),
        )

    def summary(epoch_s, curve, val_s, finished) -> dict:
        steady = sorted(epoch_s[2:])
        return dict(
            benchmark='fastpath',
            config=str(CONFIG.relative_to(REPO)),
            smoke=args.smoke,
            finished=finished,
            device=(
                torch.cuda.get_device_name()
                if torch.cuda.is_available()
                else 'cpu'
            ),
            torch=torch.__version__,
            epochs=len(epoch_s),
            max_epochs=cfg.train_cfg.max_epochs,
            schedule_epochs=schedule,
            batch_size=cfg.train_dataloader.batch_size,
            net=cfg.model.net.to_dict(),
            compile=cfg.model.compile.to_dict(),
            dtype=cfg.optim_wrapper.get('dtype'),
            train_images=len(runner.train_dataloader.dataset),
            holdout_images=len(runner.val_dataloader.dataset),
            data_root=str(data_root),
            data_s=data_s,
            epoch_s=epoch_s,
            first_epoch_s=epoch_s[0] if epoch_s else None,
            steady_epoch_s=steady[len(steady) // 2] if steady else None,
            train_s=sum(epoch_s),
            val_s=val_s,
            **extrapolate(epoch_s, val_s),
            holdout_curve=curve,
            holdout_top1=curve[-1][1] if curve else None,
            # this process only (a resumed run trained part before)
            wall_s=time.perf_counter() - t_start,
            train_with_val_s=time.perf_counter() - started,
            date=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
        )

    class Recorder(Hook):
        """Each epoch's wall time (device synchronised) and each
        validation's held-out accuracy, written after every epoch (a run
        cut by its time limit still reports) and carried over a resume."""

        priority = 'VERY_LOW'

        def __init__(self):
            self.epoch_s, self.curve, self.val_s = [], [], []

        def _sync(self):
            if torch.cuda.is_available():
                torch.cuda.synchronize()

        def before_train(self, runner):
            if runner.epoch and progress.is_file():
                saved = json.loads(progress.read_text())
                self.epoch_s = saved['epoch_s'][: runner.epoch]
                self.curve = [
                    c for c in saved['holdout_curve'] if c[0] <= runner.epoch
                ]
                self.val_s = saved.get('val_s', [])[: len(self.curve)]

        def before_train_epoch(self, runner):
            self._sync()
            self._t = time.perf_counter()

        def after_train_epoch(self, runner):
            self._sync()
            self.epoch_s.append(time.perf_counter() - self._t)
            print(
                f'epoch {runner.epoch + 1}: {self.epoch_s[-1]:.1f} s',
                flush=True,
            )
            self.save(False)

        def before_val_epoch(self, runner):
            self._sync()
            self._tv = time.perf_counter()

        def after_val_epoch(self, runner, metrics=None):
            self._sync()
            self.val_s.append(time.perf_counter() - self._tv)
            self.curve.append([runner.epoch, metrics['accuracy/top1']])
            self.save(False)

        def save(self, finished):
            result = summary(self.epoch_s, self.curve, self.val_s, finished)
            for path in {args.out, progress}:
                tmp = path.with_suffix('.tmp')
                tmp.write_text(json.dumps(result, indent=1) + '\n')
                os.replace(tmp, path)
            return result

    # Kept beside the checkpoints, so a resumed run reports every epoch.
    progress = args.work_dir / 'fastpath.json'
    for path in (args.out, progress):
        path.parent.mkdir(parents=True, exist_ok=True)
    rec = Recorder()
    runner.register_hook(rec)
    runner.train()
    result = rec.save(True)
    print(json.dumps({k: v for k, v in result.items() if k != 'epoch_s'}))
    print(f'wrote {args.out}')
    return result


if __name__ == '__main__':
    sys.exit(0 if main() else 1)

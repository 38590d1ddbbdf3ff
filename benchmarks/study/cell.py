"""One cell: a method and a seed, trained by the mmengine Runner in its
own process, its result written as one JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

from common import REPO

from .data import prepare_data
from .methods import METHODS, resolve_spec
from .noise import noisy_label_summary


def cell_name(method: str, seed: int) -> str:
    return f'{method}_seed{seed}'


def fit_schedules(schedulers, base_epochs: int, epochs: int) -> None:
    """Stretch the main schedule, the one that runs to the end of the base
    config's training (``end`` unset or ``base_epochs``), to ``epochs``;
    a schedule that ends earlier (a warm-up) keeps its epochs."""
    for sched in schedulers:
        end = sched.get('end')
        if end is not None and end < base_epochs:
            continue  # a warm-up or another early phase
        begin = sched.get('begin', 0)
        if sched.get('T_max') is not None:
            sched.T_max = epochs - begin
        sched.end = epochs


def cell_config(preset: dict, method: str, seed: int, data_root, work_dir):
    """The cell's mmengine config: base config + method + seed."""
    from mmengine.config import Config, ConfigDict
    from mmengine.registry import OPTIM_WRAPPERS

    import ausam_tasks  # noqa: F401  (registers the wrappers)

    cfg = Config.fromfile(str(REPO / preset['config']))
    epochs = preset['epochs']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        ds.data_root = str(data_root)
        ds.download = False
    # The training images without augmentation: training-set accuracy.
    cfg.test_dataloader = ConfigDict(
        cfg.val_dataloader.to_dict(),
    )
    cfg.test_dataloader.dataset.split = 'train'
    cfg.test_evaluator = cfg.val_evaluator
    if preset.get('model'):
        cfg.model.net.update(preset['model'])
    fit_schedules(cfg.param_scheduler, cfg.train_cfg.max_epochs, epochs)
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = preset['val_interval']
    spec = resolve_spec(METHODS[method], epochs)
    wrapper = OPTIM_WRAPPERS.get(spec['type'])
    if wrapper is None:
        raise KeyError(f'method {method}: no optim wrapper {spec["type"]!r}')
    from ausam_tasks.engine.optim_wrapper import init_keys

    if 'seed' in init_keys(wrapper):
        spec.setdefault('seed', seed)
    base = {k: v for k, v in cfg.optim_wrapper.items() if k != 'type'}
    cfg.optim_wrapper = ConfigDict({**base, **spec})
    if spec.get('infobatch_pass'):
        from ausam_tasks.engine.infobatch import use_infobatch

        use_infobatch(cfg)  # prune ratio 0.5, delta 0.875
    cfg.randomness = dict(seed=seed, deterministic=False)
    if preset.get('diagnostics'):
        # Off in the timed cells: each diagnostic costs seconds of training.
        cfg.custom_hooks = [
            *cfg.get('custom_hooks', []),
            dict(
                type='SelectionDiagnosticsHook',
                interval=preset['diagnostics'],
                num_probe=min(256, 10 * (preset['train_per_class'] or 25)),
                num_draws=8,
                seed=0,
            ),
        ]
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    cfg.resume = (Path(work_dir) / 'last_checkpoint').is_file()
    cfg.load_from = None
    return cfg


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    out = dict(
        platform=platform.platform(),
        cpu=cpu,
        cpus_visible=os.cpu_count(),
        cpu_affinity=sorted(os.sched_getaffinity(0)),
        torch_threads=torch.get_num_threads(),
        python=platform.python_version(),
    )
    if torch.cuda.is_available():
        out['gpu'] = torch.cuda.get_device_name(0)
    return out


def git_commit() -> str:
    def git(*a):
        return subprocess.run(
            ['git', '-C', str(REPO), *a], capture_output=True, text=True
        ).stdout.strip()

    commit = git('rev-parse', 'HEAD')
    return commit + ('-dirty' if git('status', '--porcelain', '-uno') else '')


def run_cell(
    preset_name: str, preset: dict, method: str, seed: int, out: Path
):
    """Train one cell in this process and write its JSON atomically."""
    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    t_cell = time.perf_counter()
    commit = git_commit()  # of the code this cell runs
    if preset.get('threads'):
        torch.set_num_threads(preset['threads'])
    data_root = prepare_data(
        preset['train_per_class'],
        preset['holdout_per_class'],
        preset.get('label_noise', 0.0),
    )
    work_dir = out / 'work_dirs' / cell_name(method, seed)
    cfg = cell_config(preset, method, seed, data_root, work_dir)

    class Recorder(Hook):
        """Epoch times and held-out curve, kept in the work dir so that a
        cell resumed from its checkpoint still reports every epoch."""

        priority = 'LOWEST'

        def __init__(self, path: Path):
            self.path, self.epoch_s, self.curve = path, [], []
            self.epoch_samples = []  # trained on (InfoBatch prunes)

        def before_train(self, runner):
            self.start = runner.epoch
            if runner.epoch and self.path.is_file():
                saved = json.loads(self.path.read_text())
                self.epoch_s = saved['epoch_s'][: runner.epoch]
                self.epoch_samples = saved.get('epoch_samples', [])[
                    : runner.epoch
                ]
                self.curve = [
                    c for c in saved['curve'] if c[0] <= runner.epoch
                ]

        def before_train_epoch(self, runner):
            self._t = time.perf_counter()

        def after_train_epoch(self, runner):
            self.epoch_s.append(time.perf_counter() - self._t)
            self.epoch_samples.append(len(runner.train_dataloader.sampler))
            self.save()

        def after_val_epoch(self, runner, metrics=None):
            self.curve.append([runner.epoch, metrics['accuracy/top1']])
            self.save()

        def save(self):
            self.path.write_text(
                json.dumps(
                    dict(
                        epoch_s=self.epoch_s,
                        epoch_samples=self.epoch_samples,
                        curve=self.curve,
                    )
                )
            )

    runner = Runner.from_cfg(cfg)
    rec = Recorder(Path(work_dir) / 'study_progress.json')
    runner.register_hook(rec)
    t0 = time.perf_counter()
    runner.train()
    train_wall = time.perf_counter() - t0
    if not rec.curve or rec.curve[-1][0] != runner.epoch:
        rec.curve.append([runner.epoch, runner.val()['accuracy/top1']])
    train_acc = runner.test()['accuracy/top1']
    result = dict(
        method=method,
        seed=seed,
        preset=preset_name,
        preset_settings={k: v for k, v in preset.items() if k != 'methods'},
        optim_wrapper=cfg.optim_wrapper.to_dict(),
        config=cfg.pretty_text,
        holdout_top1=rec.curve[-1][1],
        holdout_curve=rec.curve,
        train_top1=train_acc,
        train_images=len(runner.train_dataloader.dataset),
        holdout_images=len(runner.val_dataloader.dataset),
        epochs=runner.epoch,
        resumed_from_epoch=rec.start,
        epoch_s=rec.epoch_s,
        epoch_samples=rec.epoch_samples,
        train_s=sum(rec.epoch_s),
        # this process only (a resumed cell ran part of its epochs before)
        train_with_val_s=train_wall,
        total_s=time.perf_counter() - t_cell,
        git_commit=commit,
        torch=torch.__version__,
        machine=machine(),
        finished=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
    )
    if preset.get('label_noise'):
        result['label_noise'] = noisy_label_summary(runner, data_root)
    if preset.get('diagnostics'):
        from ausam_tasks.tools.plot_diagnostics import load_scalars, plot

        result['diagnostics'] = load_scalars(str(work_dir))
        plot(str(work_dir), str(out / f'{cell_name(method, seed)}.png'))
    path = out / f'{cell_name(method, seed)}.json'
    tmp = path.with_suffix(f'.tmp{os.getpid()}')
    tmp.write_text(json.dumps(result, indent=1) + '\n')
    os.replace(tmp, path)
    return result

"""Train from an mmengine config (the flags mmpretrain users know)."""

import argparse
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from ausam_tasks.engine.dist import (
    close_process_group,
    init_cpu_process_group,
)
from ausam_tasks.engine.infobatch import check_infobatch_config
from ausam_tasks.tools.args import (
    add_common_args,
    apply_common_args,
    check_optim_wrapper,
    is_sam_family,
    parse,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a model')
    p.add_argument('config', help='train config file path')
    p.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help="resume from PATH, or with no value ('auto') from "
        'the latest checkpoint in the work dir',
    )
    p.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: fp16 with loss scaling on a GPU, bf16 '
        'autocast on a CPU',
    )
    p.add_argument(
        '--no-validate',
        action='store_true',
        help='skip validation during training',
    )
    p.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the total batch size (GPUs x batch per GPU) '
        "over the config's auto_scale_lr.base_batch_size",
    )
    add_common_args(p)
    return parse(p, argv)


def use_amp(cfg: Config) -> None:
    """``--amp``: fp16 with loss scaling on a GPU; bf16 autocast on a CPU,
    where fp16 runs several times slower than fp32 and mmengine's
    AmpOptimWrapper refuses to run."""
    ow = cfg.optim_wrapper
    kind = ow.get('type', 'OptimWrapper')
    gpu = torch.cuda.is_available()
    if is_sam_family(cfg):
        ow.dtype = 'float16' if gpu else 'bfloat16'
    elif kind in ('OptimWrapper', 'AmpOptimWrapper') and gpu:
        ow.type = 'AmpOptimWrapper'
        ow.setdefault('loss_scale', 'dynamic')
    elif kind == 'OptimWrapper':
        ow.update(type='AutocastOptimWrapper', dtype='bfloat16')
    else:
        raise ValueError(
            f'--amp does not know how to enable mixed precision for '
            f'optim_wrapper.type={kind!r}'
            + ('' if gpu else ' on a CPU (no GPU found: --amp means bf16)')
        )
    if not gpu:
        print_log(
            '--amp on a CPU: bfloat16 autocast (fp16 needs a GPU)',
            logger='current',
        )


def merge_args(cfg: Config, args) -> Config:
    """Apply the command-line flags to the config."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0]
        )
    cfg.launcher = args.launcher
    cfg = apply_common_args(cfg, args)
    hooks = cfg.default_hooks
    hooks.setdefault('random_streams', dict(type='RandomStreamsHook'))
    if args.amp:
        use_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(
                f'--resume {args.resume}: no such checkpoint file'
            )
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        # mmengine's Runner does the scaling (Runner.scale_lr).
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(
                '--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
                'config (the total batch size its lr was tuned for), e.g. '
                '--cfg-options auto_scale_lr.base_batch_size=128'
            )
        cfg.auto_scale_lr.enable = True
    check_optim_wrapper(cfg)
    check_infobatch_config(cfg)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg = merge_args(cfg, args)
    init_cpu_process_group(args.launcher)
    runner = Runner.from_cfg(cfg)
    count_accumulation_in_lr_scaling(runner)
    runner.train()
    return runner


def count_accumulation_in_lr_scaling(runner: Runner) -> None:
    """mmengine's ``Runner.scale_lr`` scales by world size x loader batch,
    but with ``accumulative_counts=N`` an update averages N loader batches:
    the ratio must count them. The Runner's own copy of ``auto_scale_lr``
    gets base_batch_size / N; the dumped config keeps the user's."""
    scale = runner.auto_scale_lr
    counts = (runner.cfg.get('optim_wrapper') or {}).get(
        'accumulative_counts', 1
    )
    if not scale or not scale.get('enable', False) or counts == 1:
        return
    base = scale['base_batch_size']
    runner.auto_scale_lr = dict(scale, base_batch_size=base / counts)
    runner.logger.info(
        f'auto_scale_lr: accumulative_counts={counts} loader batches make '
        f'one update, so the LR scales by {counts} x the batch size over '
        f'base_batch_size={base} (the next line divides by {base} / {counts})'
    )


if __name__ == '__main__':
    main()
    close_process_group()

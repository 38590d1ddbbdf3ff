"""Train from an mmengine config (the flags mmpretrain users know)."""

import argparse
import os.path as osp
import warnings

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from ausam_tasks.engine.dist import init_cpu_process_group
from ausam_tasks.tools.args import (
    SAM_WRAPPERS,
    add_common_args,
    apply_common_args,
    check_optim_wrapper,
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
        help='fp16 mixed precision (SAM wrappers: dtype=float16)',
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
        ow = cfg.optim_wrapper
        kind = ow.get('type', 'OptimWrapper')
        if not torch.cuda.is_available() and kind not in SAM_WRAPPERS:
            # (the SAM wrappers warn themselves, at their first step)
            warnings.warn(
                '--amp: fp16 autocast on the CPU runs several times slower '
                "than fp32; use optim_wrapper.dtype='bfloat16' on a CPU"
            )
        if kind in SAM_WRAPPERS:
            ow.dtype = 'float16'
        elif kind == 'OptimWrapper':
            ow.type = 'AmpOptimWrapper'
            ow.setdefault('loss_scale', 'dynamic')
        elif kind != 'AmpOptimWrapper':
            raise ValueError(
                f'--amp does not know how to enable mixed '
                f'precision for optim_wrapper.type={kind!r}'
            )
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
    runner.train()
    return runner


if __name__ == '__main__':
    main()

"""Train from an mmengine config (the flags mmpretrain users know)."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from ausam_tasks.engine.dist import init_cpu_process_group

SAM_WRAPPERS = ('SAMOptimWrapper', 'AUSAMOptimWrapper')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Train a model')
    p.add_argument('config', help='train config file path')
    p.add_argument('--work-dir', help='where logs and checkpoints go')
    p.add_argument('--resume', nargs='?', type=str, const='auto',
                   help="resume from PATH, or with no value ('auto') from "
                   'the latest checkpoint in the work dir')
    p.add_argument('--amp', action='store_true',
                   help='fp16 mixed precision (SAM wrappers: dtype=float16)')
    p.add_argument('--no-validate', action='store_true',
                   help='skip validation during training')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, e.g. '
                   'optim_wrapper.alpha=0.6 train_cfg.max_epochs=10')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                   default='none', help='job launcher')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args) -> Config:
    """Apply the command-line flags to the config."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.launcher = args.launcher
    if args.amp:
        ow = cfg.optim_wrapper
        kind = ow.get('type', 'OptimWrapper')
        if kind in SAM_WRAPPERS:
            ow.dtype = 'float16'
        elif kind == 'OptimWrapper':
            ow.type = 'AmpOptimWrapper'
            ow.setdefault('loss_scale', 'dynamic')
        elif kind != 'AmpOptimWrapper':
            raise ValueError(f'--amp does not know how to enable mixed '
                             f'precision for optim_wrapper.type={kind!r}')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(
                f'--resume {args.resume}: no such checkpoint file')
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
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

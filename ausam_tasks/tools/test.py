"""Evaluate a checkpoint with the test (or val) settings of a config."""

import argparse
import os.path as osp

from mmengine.config import Config
from mmengine.runner import Runner

from ausam_tasks.engine.dist import (
    close_process_group,
    init_cpu_process_group,
)
from ausam_tasks.tools.args import (
    add_common_args,
    apply_common_args,
    parse,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test (evaluate) a checkpoint')
    p.add_argument('config', help='config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    add_common_args(p)
    return parse(p, argv)


def main(argv=None):
    args = parse_args(argv)
    for path, what in (
        (args.config, 'config'),
        (args.checkpoint, 'checkpoint'),
    ):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = (
        args.work_dir
        or cfg.get('work_dir')
        or osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    )
    cfg.load_from = args.checkpoint
    cfg.launcher = args.launcher
    cfg = apply_common_args(cfg, args)
    if cfg.get('test_dataloader') is None and cfg.get('val_dataloader'):
        # Configs that only define validation test on that split.
        cfg.test_dataloader = cfg.val_dataloader
        cfg.test_evaluator = cfg.val_evaluator
        cfg.test_cfg = cfg.get('test_cfg') or dict(type='TestLoop')
    init_cpu_process_group(args.launcher)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    width = max((len(k) for k in metrics), default=0)
    print(
        '\n'.join(
            f'{k:<{width}}  {v:.4f}'
            if isinstance(v, float)
            else f'{k:<{width}}  {v}'
            for k, v in metrics.items()
        )
    )
    return metrics


if __name__ == '__main__':
    main()
    close_process_group()

"""Command-line flags shared by the train and test tools."""

import argparse
import os

from mmengine.config import DictAction


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--work-dir', help='where logs and checkpoints go')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'optim_wrapper.alpha=0.6 train_cfg.max_epochs=10',
    )
    p.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args

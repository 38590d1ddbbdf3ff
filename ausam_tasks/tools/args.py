"""Command-line flags shared by the train and test tools."""

import argparse
import os
import os.path as osp

from mmengine.config import DictAction

# Settings only the SAM-family wrappers take (left over when --cfg-options
# changes optim_wrapper.type, since mmengine merges into the old dict).
SAM_ONLY_KEYS = (
    'rho',
    'adaptive',
    'eta',
    'alpha',
    's_min',
    's_max',
    'warmup_epochs',
    'warmup_by',
    'init_epochs',
    'selector',
    'score_average',
    'ema_momentum',
    'num_samples',
    'seed',
)
SAM_WRAPPERS = ('SAMOptimWrapper', 'AUSAMOptimWrapper')


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument('--work-dir', help='where logs and checkpoints go')
    p.add_argument(
        '--non-strict',
        action='store_true',
        help='load checkpoints (load_from, --resume, the tested checkpoint) '
        'non-strictly: keys that do not fit the model are skipped with a '
        'warning instead of an error (e.g. a float checkpoint into a QAT '
        'model)',
    )
    p.add_argument(
        '--image-folder',
        metavar='DIR',
        help="replace the config's datasets by image folders: train on "
        'DIR/train/<class>/<image>, validate and test on DIR/val/<class>/'
        '<image> (classification configs; images of the size the config '
        'expects, e.g. 32x32 for CIFAR configs)',
    )
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


def apply_common_args(cfg, args):
    """Checkpoint strictness and --image-folder, for both tools."""
    hooks = cfg.get('default_hooks') or {}
    check = dict(hooks.get('checkpoint_check') or {})
    check.update(type=check.get('type', 'CheckpointCheckHook'))
    check['strict'] = not args.non_strict
    hooks['checkpoint_check'] = check
    cfg.default_hooks = hooks
    if args.image_folder:
        use_image_folder(cfg, args.image_folder)
    return cfg


def _class_folders(root: str):
    if not osp.isdir(root):
        raise FileNotFoundError(
            f'--image-folder: {root!r} does not exist; expected '
            'DIR/train/<class>/<image> and DIR/val/<class>/<image>'
        )
    return sorted(d for d in os.listdir(root) if osp.isdir(osp.join(root, d)))


def use_image_folder(cfg, root: str) -> None:
    """Point every dataloader of a classification config at DIR/train or
    DIR/val (the pipelines stay), and size the classifier to the number of
    class folders."""
    classes = _class_folders(osp.join(root, 'train'))
    val_classes = _class_folders(osp.join(root, 'val'))
    if not classes or classes != val_classes:
        raise ValueError(
            f'--image-folder: {root}/train and {root}/val must hold the '
            f'same class folders, got {classes} and {val_classes}'
        )
    for key, part in (
        ('train_dataloader', 'train'),
        ('val_dataloader', 'val'),
        ('test_dataloader', 'val'),
    ):
        loader = cfg.get(key)
        if not loader:
            continue
        old = loader.get('dataset') or {}
        # A fresh dict: the old dataset's own keys (split, download, ...)
        # mean nothing to ImageFolder.
        loader['dataset'] = dict(
            type='ImageFolder',
            data_root=osp.join(root, part),
            pipeline=old.get('pipeline', []),
        )
    if not _set_num_classes(cfg.get('model'), len(classes)):
        raise ValueError(
            '--image-folder: the model config has no num_classes to set to '
            f'the {len(classes)} class folders; is it a classification '
            'config?'
        )


def _set_num_classes(node, n: int) -> bool:
    found = False
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'num_classes':
                node[key] = n
                found = True
            else:
                found = _set_num_classes(value, n) or found
    return found


def check_optim_wrapper(cfg) -> None:
    """A non-SAM optim_wrapper.type with SAM settings left over (what
    ``--cfg-options optim_wrapper.type=OptimWrapper`` gives on an AUSAM
    config) fails here with the working recipes."""
    ow = cfg.get('optim_wrapper') or {}
    kind = ow.get('type', 'OptimWrapper')
    left = [k for k in SAM_ONLY_KEYS if k in ow]
    if kind in SAM_WRAPPERS or not left or not isinstance(kind, str):
        return
    raise ValueError(
        f'optim_wrapper.type={kind!r} but the config still sets {left}: '
        '--cfg-options merges into the AUSAM/SAM settings instead of '
        'replacing them. Train the sibling *_sgd_* config, or replace the '
        'whole wrapper: --cfg-options optim_wrapper._delete_=True '
        'optim_wrapper.type=OptimWrapper optim_wrapper.optimizer.type=SGD '
        'optim_wrapper.optimizer.lr=0.1 optim_wrapper.optimizer.momentum=0.9 '
        'optim_wrapper.optimizer.weight_decay=5e-4'
    )

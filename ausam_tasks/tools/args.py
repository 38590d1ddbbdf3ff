"""Command-line flags shared by the train and test tools."""

import argparse
import copy
import difflib
import os
import os.path as osp
import warnings

import torch
from mmengine.config import DictAction
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS, DefaultScope
from mmengine.utils import import_modules_from_strings
from torch import nn

from ausam_tasks.engine.methods import PlainOptimWrapper
from ausam_tasks.engine.optim_wrapper import SAMOptimWrapper, init_keys


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
        if str(old.get('type', '')).startswith('Device'):
            raise ValueError(
                f'--image-folder: {key}.dataset is {old["type"]}, the '
                "fast path's CIFAR pickles held on the device; an image "
                'folder needs the plain config (the same name without '
                '-fast)'
            )
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


def optim_wrapper_class(cfg):
    """The class ``optim_wrapper.type`` names, looked up as the Runner will
    (the config's custom_imports and default_scope); an unregistered name
    fails here with the registered ones."""
    ow = cfg.get('optim_wrapper') or {}
    kind = ow.get('type', 'OptimWrapper')
    if not isinstance(kind, str):
        return kind
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    import ausam_tasks.engine  # noqa: F401  (registers the wrappers)

    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        cls = OPTIM_WRAPPERS.get(kind)
    if cls is None:
        names = sorted(OPTIM_WRAPPERS.module_dict)
        close = difflib.get_close_matches(kind, names, n=1)
        hint = f' Did you mean {close[0]!r}?' if close else ''
        raise ValueError(
            f'optim_wrapper.type={kind!r} is not a registered optimizer '
            f'wrapper.{hint} Registered: {", ".join(names)}'
        )
    return cls


def check_optim_wrapper(cfg) -> None:
    """Validate ``optim_wrapper`` when the config is read, before the
    Runner builds the model and data: the type is registered; a SAM-family
    wrapper is built once around a stand-in parameter, so a misspelt or
    out-of-range setting fails now, with the wrapper's own message; a
    wrapper with another method's settings left over (what ``--cfg-options
    optim_wrapper.type=X`` gives on a config of another method) fails with
    the working recipe."""
    ow = cfg.get('optim_wrapper') or {}
    cls = optim_wrapper_class(cfg)
    if not isinstance(cls, type):
        return
    settings = {
        k: v
        for k, v in ow.items()
        if k not in ('type', 'optimizer', 'constructor', 'paramwise_cfg')
    }
    left = sorted((set(settings) & sam_family_keys()) - init_keys(cls))
    if (
        left
        and not issubclass(cls, SAMOptimWrapper)
        and (set(left) <= init_keys(PlainOptimWrapper))
    ):
        # Settings of the per-sample step (accumulation in pieces,
        # InfoBatch weights) on mmengine's own wrapper.
        raise ValueError(
            f'optim_wrapper.type={cls.__name__!r} does not take {left}: '
            'they are settings of the per-sample step. For the base '
            "optimizer's own step with them use type='PlainOptimWrapper' "
            '(--cfg-options optim_wrapper.type=PlainOptimWrapper), for SAM '
            "'SAMOptimWrapper'."
        )
    if left:
        # Another method's settings, merged from the config a config
        # inherits (_base_) or left by --cfg-options optim_wrapper.type=X.
        raise ValueError(
            f'optim_wrapper.type={cls.__name__!r} but the config still sets '
            f'{left}, settings {cls.__name__} does not take: a config that '
            "inherits another method's config (_base_), and --cfg-options, "
            'merge into that wrapper instead of replacing it. Train the '
            'sibling config of that method, or replace the whole wrapper '
            "(then add the method's own settings): in a config file, "
            f"optim_wrapper = dict(_delete_=True, type='{cls.__name__}', "
            "optimizer=dict(type='SGD', lr=0.1, momentum=0.9, "
            'weight_decay=5e-4)); on the command line, --cfg-options '
            f'optim_wrapper._delete_=True optim_wrapper.type={cls.__name__} '
            'optim_wrapper.optimizer.type=SGD optim_wrapper.optimizer.lr=0.1 '
            'optim_wrapper.optimizer.momentum=0.9 '
            'optim_wrapper.optimizer.weight_decay=5e-4'
        )
    if issubclass(cls, SAMOptimWrapper):
        _dry_build(cfg, cls, settings)


def _dry_build(cfg, cls, settings: dict) -> None:
    optimizer = (cfg.optim_wrapper.get('optimizer') or {}).copy()
    if 'type' not in optimizer:
        raise ValueError(
            f'optim_wrapper ({cls.__name__}) has no optimizer=dict(type=...)'
        )
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        base = OPTIMIZERS.build(
            dict(optimizer, params=[nn.Parameter(torch.zeros(1))])
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            cls(base, **copy.deepcopy(settings))
    except (TypeError, ValueError) as e:
        # The wrapper's own messages may already start with its name.
        why = str(e).removeprefix(f'{cls.__name__}: ')
        raise type(e)(f'optim_wrapper ({cls.__name__}): {why}') from None


def sam_family_keys() -> set:
    """Settings that only SAM-family wrappers take."""
    keys = set()
    for cls in set(OPTIM_WRAPPERS.module_dict.values()):
        if issubclass(cls, SAMOptimWrapper):
            keys |= init_keys(cls)
    return keys - init_keys(AmpOptimWrapper)


def is_sam_family(cfg) -> bool:
    cls = optim_wrapper_class(cfg)
    return isinstance(cls, type) and issubclass(cls, SAMOptimWrapper)

"""Write a checkpoint's weights alone, loadable by ``torch.load`` with
``weights_only=True`` and no allow-list (mmpretrain's ``tools/test.py``, its
``init_model``, ``load_from`` of any stock config), in the style of
mmpretrain's ``publish_model.py``.

mmengine 0.10.7 checkpoints pickle its own objects (``HistoryBuffer``, numpy
scalars) beside the weights, which torch >= 2.6 refuses to load by default.
The input is read through this project's loader, which allows exactly those
types; the output holds tensors and plain metadata only.
"""

import argparse
import hashlib
import os
import os.path as osp

import torch

from ausam_tasks.engine.checkpoint import load_checkpoint_file, state_dict_of

# Plain metadata kept from the checkpoint's ``meta`` (the rest, e.g. the
# message hub, is training state).
META_KEYS = ('epoch', 'iter', 'seed', 'experiment_name', 'dataset_meta')


def _plain(value) -> bool:
    if isinstance(value, (str, int, float, bool, type(None))):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def export_weights(src: str, dst: str, sha256_suffix: bool = False) -> str:
    """Write the model weights of ``src`` to ``dst``; returns the path
    written (with ``-<sha256 prefix>`` before the extension on request, as
    ``publish_model.py`` names its files)."""
    checkpoint = load_checkpoint_file(src)
    state = state_dict_of(checkpoint, f'checkpoint {src!r}')
    state = {
        k.removeprefix('module.'): v.detach().cpu().clone()
        for k, v in state.items()
    }
    meta = (
        (checkpoint.get('meta') or {}) if isinstance(checkpoint, dict) else {}
    )
    meta = {k: meta[k] for k in META_KEYS if k in meta and _plain(meta[k])}
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save({'state_dict': state, 'meta': meta}, dst)
    if sha256_suffix:
        with open(dst, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:8]
        stem, ext = osp.splitext(dst)
        final = f'{stem}-{digest}{ext}'
        os.replace(dst, final)
        dst = final
    return dst


def main(argv=None):
    p = argparse.ArgumentParser(
        description='Export the weights of a checkpoint (no training state)'
    )
    p.add_argument('checkpoint', help='checkpoint written by training')
    p.add_argument('out', help='weights file to write')
    p.add_argument(
        '--sha256',
        action='store_true',
        help="append the file's sha256 prefix to its name, as mmpretrain's "
        'publish_model.py does',
    )
    args = p.parse_args(argv)
    path = export_weights(args.checkpoint, args.out, args.sha256)
    print(path)
    return path


if __name__ == '__main__':
    main()

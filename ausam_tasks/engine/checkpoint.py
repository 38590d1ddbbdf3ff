"""Loading mmengine checkpoints on torch >= 2.6 without unpickling arbitrary
objects.

torch.load now defaults to ``weights_only=True``, which rejects the few
non-tensor types mmengine 0.10.7 writes into a checkpoint (message-hub
history buffers, numpy scalars and arrays, and ``getattr(HistoryBuffer,
'min')``-style references to its statistics methods). We allow exactly those,
so ``runner.resume()`` and ``load_checkpoint`` work while any other pickled
object is still refused.
"""

import collections
import os
import pickle
import re

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar


# HistoryBuffer registers these in __init__, so a fresh process may not have
# them in HistoryBuffer._statistics_methods yet.
_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_method(owner, name):
    """Stands in for ``getattr`` while unpickling: only HistoryBuffer's
    statistics methods resolve, anything else is refused."""
    if owner is HistoryBuffer and (
        name in _BUILTIN_STATISTICS
        or name in HistoryBuffer._statistics_methods
    ):
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a checkpoint'
    )


SAFE_GLOBALS = [
    HistoryBuffer,
    collections.OrderedDict,
    np.ndarray,
    np.dtype,
    _reconstruct,
    scalar,
    *{
        type(np.dtype(t))
        for t in (
            'float64',
            'float32',
            'float16',
            'int64',
            'int32',
            'int16',
            'int8',
            'uint8',
            'bool',
        )
    },
    (history_buffer_method, '__builtin__.getattr'),
    (history_buffer_method, 'builtins.getattr'),
]


def allow_mmengine_checkpoints() -> None:
    """Allow-list what mmengine writes into checkpoints (idempotent)."""
    torch.serialization.add_safe_globals(SAFE_GLOBALS)


def load_checkpoint_file(path: str, map_location='cpu') -> dict:
    """``torch.load(weights_only=True)`` with mmengine's types allowed; a
    missing file is reported by name, a file torch cannot read as a
    checkpoint raises ``ValueError`` saying so."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    allow_mmengine_checkpoints()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        # torch's own message advises weights_only=False, i.e. running
        # arbitrary code from the file: report what the file is instead.
        msg = str(e)
        what = re.search(r'GLOBAL ([\w.]+)', msg)
        if what or 'Unsupported global' in msg:
            reason = (
                'it pickles a Python object that is not part of a checkpoint'
                + (f' ({what.group(1)})' if what else '')
            )
        elif 'zip archive' in msg:
            reason = 'it is not a complete torch zip archive (cut short?)'
        elif isinstance(e, (pickle.UnpicklingError, KeyError, EOFError)):
            reason = 'it is neither a torch zip archive nor a pickle'
        else:
            reason = f'{type(e).__name__}: {msg.strip()[:200]}'
        raise ValueError(
            f'{path!r} is not a checkpoint this toolkit can load: {reason}. '
            'Expected a .pth file written by tools/train.py (mmengine) or '
            'torch.save(model.state_dict()); a file cut short by a killed '
            'save or a copy in progress also lands here.'
        ) from None


# Every local path mmengine loads (load_from, resume, tools/test.py) goes
# through the safe loader and its clear errors.
CheckpointLoader.register_scheme(prefixes='', force=True)(load_checkpoint_file)


def state_dict_of(checkpoint, path: str = 'the checkpoint') -> dict:
    """The model weights of a loaded checkpoint (mmengine's ``state_dict``
    entry, or the checkpoint itself when it is a bare state dict)."""
    state = checkpoint
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        state = checkpoint['state_dict']
    if not isinstance(state, dict) or not any(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(
            f'{path} is not a checkpoint: it holds a '
            f'{type(checkpoint).__name__} without model weights (expected '
            "a dict with a 'state_dict' of tensors, or a state dict)"
        )
    return state


def state_dict_mismatch(model, state: dict) -> tuple:
    """(missing, unexpected, mis-shaped) keys of ``state`` against
    ``model``; mis-shaped entries are ``'key: ckpt shape vs model shape'``.
    A leading ``module.`` (a DDP checkpoint) is ignored, as mmengine does."""
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f'{k}: {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} '
        'in the model'
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    return missing, unexpected, misshaped


def check_state_dict(model, state: dict, source: str = 'the checkpoint'):
    """Raise ``KeyError`` when ``state`` does not fit ``model`` exactly,
    naming the model type, the counts and the first few keys."""
    missing, unexpected, misshaped = state_dict_mismatch(model, state)
    if not (missing or unexpected or misshaped):
        return
    parts = []
    for name, keys in (
        ('missing', missing),
        ('unexpected', unexpected),
        ('mis-shaped', misshaped),
    ):
        if keys:
            parts.append(f'{name}: {keys[:3]}' + (' ...' * (len(keys) > 3)))
    kind = type(model).__name__
    net = getattr(model, 'net', None)
    if isinstance(net, torch.nn.Module):  # the task models' network
        kind += f' ({type(net).__name__})'
    raise KeyError(
        f'{source} does not fit the {kind} model: '
        f'{len(missing)} missing, {len(unexpected)} unexpected and '
        f'{len(misshaped)} mis-shaped keys ({"; ".join(parts)}). Is it a '
        "checkpoint of this config's model? To load the matching keys "
        'anyway (e.g. a float checkpoint into a QAT model), pass '
        '--non-strict (tools/train.py, tools/test.py) or set '
        'default_hooks.checkpoint_check.strict=False.'
    )


class AtomicLocalBackend(LocalBackend):
    """Local files written under a temporary name, then renamed: a kill
    during a save leaves the previous file, never a truncated one."""

    def put(self, obj: bytes, filepath) -> None:
        self._atomic_write(filepath, obj, 'wb')

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self._atomic_write(filepath, obj.encode(encoding), 'wb')

    @staticmethod
    def _atomic_write(filepath, data: bytes, mode: str) -> None:
        filepath = str(filepath)
        folder = os.path.dirname(filepath) or '.'
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(
            folder, f'.{os.path.basename(filepath)}.{os.getpid()}.tmp'
        )
        try:
            with open(tmp, mode) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)  # atomic on POSIX and Windows
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


# CheckpointHook(backend_args=dict(backend='atomic_local')) saves this way
# (the default in configs/_base_/*runtime*.py).
register_backend('atomic_local', AtomicLocalBackend, force=True)

allow_mmengine_checkpoints()

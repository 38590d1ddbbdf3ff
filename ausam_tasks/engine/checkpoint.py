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

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

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
    missing file is reported by name."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    allow_mmengine_checkpoints()
    return torch.load(path, map_location=map_location, weights_only=True)


allow_mmengine_checkpoints()

"""ausam-tasks: cheap sharpness-aware training (SAM, ASAM, AUSAM).

The plain-PyTorch core (``ausam_tasks.sam``, ``.scores``, ``.selection``)
imports no mmengine; ``ausam_tasks.engine`` registers the mmengine pieces and
is imported here when mmengine is installed.
"""

from .sam import (
    AUSAM,
    SAM,
    StepResult,
    frozen_bn_stats,
    perturbation,
    second_pass,
)
from .scores import ScoreTable
from .selection import select_subset, selection_probs

try:
    import mmengine  # noqa: F401
except ImportError:  # the core works without mmengine (e.g. GPU benchmarks)
    pass
else:
    from . import engine  # noqa: F401  registers wrappers

__version__ = '0.1.0'
__all__ = [
    'AUSAM',
    'SAM',
    'ScoreTable',
    'StepResult',
    'frozen_bn_stats',
    'perturbation',
    'second_pass',
    'select_subset',
    'selection_probs',
]

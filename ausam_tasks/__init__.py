"""ausam-tasks: cheap sharpness-aware training (SAM, ASAM, AUSAM).

The plain-PyTorch core (``ausam_tasks.step``, ``.sam``, ``.methods``,
``.scores``, ``.selection``)
imports no mmengine; ``ausam_tasks.engine`` registers the mmengine pieces in
mmengine's root registries and is imported here (mmengine is a dependency).
"""

from . import engine  # noqa: F401  (registers the wrappers and hooks)
from .perturb import frozen_bn_stats, perturbation, second_pass
from .sam import AUSAM, SAM
from .scores import ScoreTable
from .selection import select_subset, selection_probs
from .step import Method, StepContext, StepResult

__version__ = '0.1.0'
__all__ = [
    'AUSAM',
    'SAM',
    'ScoreTable',
    'Method',
    'StepContext',
    'StepResult',
    'frozen_bn_stats',
    'perturbation',
    'second_pass',
    'select_subset',
    'selection_probs',
]

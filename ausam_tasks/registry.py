"""The project's registry scope ``ausam_tasks``.

Every registry is a child of mmengine's root registry of the same kind, so
anything registered in mmengine (optimizers, hooks, loops, schedulers) also
resolves from this scope. The SAM-family optimizer wrappers and the DDP
wrapper are registered in mmengine's root registries themselves, so a config
in any scope can switch to them by changing ``type`` alone.
"""

from mmengine import registry as mm
from mmengine.registry import Registry

SCOPE = 'ausam_tasks'


def _child(root: Registry) -> Registry:
    return Registry(root.name, parent=root, scope=SCOPE)


RUNNERS = _child(mm.RUNNERS)
RUNNER_CONSTRUCTORS = _child(mm.RUNNER_CONSTRUCTORS)
LOOPS = _child(mm.LOOPS)
HOOKS = _child(mm.HOOKS)
LOG_PROCESSORS = _child(mm.LOG_PROCESSORS)
DATASETS = _child(mm.DATASETS)
DATA_SAMPLERS = _child(mm.DATA_SAMPLERS)
TRANSFORMS = _child(mm.TRANSFORMS)
MODELS = _child(mm.MODELS)
MODEL_WRAPPERS = _child(mm.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(mm.WEIGHT_INITIALIZERS)
OPTIMIZERS = _child(mm.OPTIMIZERS)
OPTIM_WRAPPERS = _child(mm.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child(mm.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(mm.PARAM_SCHEDULERS)
METRICS = _child(mm.METRICS)
EVALUATOR = _child(mm.EVALUATOR)
TASK_UTILS = _child(mm.TASK_UTILS)
VISUALIZERS = _child(mm.VISUALIZERS)
VISBACKENDS = _child(mm.VISBACKENDS)
FUNCTIONS = _child(mm.FUNCTIONS)
INFERENCERS = _child(mm.INFERENCERS)

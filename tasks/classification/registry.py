"""Registry scope ``tasks.classification`` for the classification task.

Every registry is a child of mmengine's root registry of the same kind: a
lookup that misses here falls back to mmengine's entries, among them the
core's SAM-family optimizer wrappers, DDP wrapper and logger hook, which the
core registers in mmengine's roots so that any scope finds them. mmengine
finds a scope's registries by importing ``<scope>.registry``, hence the scope
name is this module's package path. Configs set
``default_scope = 'tasks.classification'``.
"""

from mmengine import registry as mme
from mmengine.registry import Registry

SCOPE = 'tasks.classification'


def _child(root: Registry, locations=()) -> Registry:
    return Registry(
        root.name, parent=root, scope=SCOPE, locations=list(locations)
    )


# This package's own modules register here; a lookup imports them first.
MODELS = _child(mme.MODELS, [SCOPE])
DATASETS = _child(mme.DATASETS, [SCOPE])
TRANSFORMS = _child(mme.TRANSFORMS, [SCOPE])
METRICS = _child(mme.METRICS, [SCOPE])
HOOKS = _child(mme.HOOKS)

# The rest resolve to mmengine's entries, found from this scope without
# warnings.
RUNNERS = _child(mme.RUNNERS)
RUNNER_CONSTRUCTORS = _child(mme.RUNNER_CONSTRUCTORS)
LOOPS = _child(mme.LOOPS)
LOG_PROCESSORS = _child(mme.LOG_PROCESSORS)
DATA_SAMPLERS = _child(mme.DATA_SAMPLERS)
MODEL_WRAPPERS = _child(mme.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(mme.WEIGHT_INITIALIZERS)
OPTIMIZERS = _child(mme.OPTIMIZERS)
OPTIM_WRAPPERS = _child(mme.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child(mme.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(mme.PARAM_SCHEDULERS)
EVALUATOR = _child(mme.EVALUATOR)
TASK_UTILS = _child(mme.TASK_UTILS)
VISUALIZERS = _child(mme.VISUALIZERS)
VISBACKENDS = _child(mme.VISBACKENDS)
FUNCTIONS = _child(mme.FUNCTIONS)
INFERENCERS = _child(mme.INFERENCERS)

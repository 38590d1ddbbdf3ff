"""Registry scope ``tasks.qat`` for quantization-aware training.

QAT wraps the classification task's networks, datasets, transforms and
metric, so every registry here is a child of the ``tasks.classification``
registry of the same kind (itself a child of mmengine's root): a lookup that
misses here finds the classification entries, then mmengine's. Configs set
``default_scope = 'tasks.qat'``.
"""

from mmengine.registry import Registry

from tasks.classification import registry as cls

SCOPE = 'tasks.qat'


def _child(parent: Registry, locations=()) -> Registry:
    return Registry(
        parent.name, parent=parent, scope=SCOPE, locations=list(locations)
    )


MODELS = _child(cls.MODELS, [SCOPE])
HOOKS = _child(cls.HOOKS, [SCOPE])
DATASETS = _child(cls.DATASETS)
TRANSFORMS = _child(cls.TRANSFORMS)
METRICS = _child(cls.METRICS)
RUNNERS = _child(cls.RUNNERS)
RUNNER_CONSTRUCTORS = _child(cls.RUNNER_CONSTRUCTORS)
LOOPS = _child(cls.LOOPS)
LOG_PROCESSORS = _child(cls.LOG_PROCESSORS)
DATA_SAMPLERS = _child(cls.DATA_SAMPLERS)
MODEL_WRAPPERS = _child(cls.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(cls.WEIGHT_INITIALIZERS)
OPTIMIZERS = _child(cls.OPTIMIZERS)
OPTIM_WRAPPERS = _child(cls.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child(cls.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(cls.PARAM_SCHEDULERS)
EVALUATOR = _child(cls.EVALUATOR)
TASK_UTILS = _child(cls.TASK_UTILS)
VISUALIZERS = _child(cls.VISUALIZERS)
VISBACKENDS = _child(cls.VISBACKENDS)
FUNCTIONS = _child(cls.FUNCTIONS)
INFERENCERS = _child(cls.INFERENCERS)

"""Registry scope ``tasks.pose_simcc`` for the SimCC pose task.

Why a scope of its own: mmpose's datasets, transforms, codecs and metrics are
wanted, but ``mmpose.models`` cannot be imported (it needs mmcv's compiled
ops), and mmpose's MODELS registry imports it lazily on any build from the
``mmpose`` scope. So:

* DATASETS, DATA_SAMPLERS, TRANSFORMS, KEYPOINT_CODECS, METRICS, EVALUATOR and
  HOOKS are children of mmpose's registries: a lookup that misses here falls
  back to mmpose's entries (and from there to mmengine's). Their ``locations``
  import only the mmpose sub-packages that are safe (datasets, codecs,
  evaluation).
* MODELS, MODEL_WRAPPERS, WEIGHT_INITIALIZERS, TASK_UTILS and VISUALIZERS are
  children of mmengine's root registries, NOT of mmpose's, so no lookup can
  reach mmpose's lazy ``mmpose.models`` import. This task's own models live
  here.
* The remaining runner registries are children of mmengine's roots so that a
  Runner in this scope finds its loops, optimizers, the project's SAM/AUSAM
  optimizer wrappers (registered in mmengine's root OPTIM_WRAPPERS) and the
  SAM-aware DDP wrapper without warnings.

mmengine finds a scope's registries by importing ``<scope>.registry`` (see
``Registry.switch_scope_and_registry``), which is why the scope name is this
module's package path. Configs set ``default_scope = 'tasks.pose_simcc'``.
"""

from mmengine import registry as mme
from mmengine.registry import Registry
from mmpose import registry as mmp

SCOPE = 'tasks.pose_simcc'

_OWN = 'tasks.pose_simcc'

# Children of mmpose's registries (data, codecs, evaluation).
DATASETS = Registry(
    'dataset', parent=mmp.DATASETS, scope=SCOPE, locations=['mmpose.datasets']
)
DATA_SAMPLERS = Registry(
    'data sampler',
    parent=mmp.DATA_SAMPLERS,
    scope=SCOPE,
    locations=['mmpose.datasets.samplers'],
)
TRANSFORMS = Registry(
    'transform',
    parent=mmp.TRANSFORMS,
    scope=SCOPE,
    locations=['mmpose.datasets.transforms'],
)
KEYPOINT_CODECS = Registry(
    'keypoint codec',
    parent=mmp.KEYPOINT_CODECS,
    scope=SCOPE,
    locations=['mmpose.codecs'],
)
METRICS = Registry(
    'metric',
    parent=mmp.METRICS,
    scope=SCOPE,
    locations=['mmpose.evaluation.metrics', f'{_OWN}.evaluation'],
)
EVALUATOR = Registry(
    'evaluator',
    parent=mmp.EVALUATORS,
    scope=SCOPE,
    locations=['mmpose.evaluation.evaluators'],
)
HOOKS = Registry(
    'hook', parent=mmp.HOOKS, scope=SCOPE, locations=[f'{_OWN}.evaluation']
)

# Children of mmengine's roots: never reach mmpose's lazy model imports.
MODELS = Registry(
    'model', parent=mme.MODELS, scope=SCOPE, locations=[f'{_OWN}.models']
)
MODEL_WRAPPERS = Registry(
    'model wrapper', parent=mme.MODEL_WRAPPERS, scope=SCOPE
)
WEIGHT_INITIALIZERS = Registry(
    'weight initializer', parent=mme.WEIGHT_INITIALIZERS, scope=SCOPE
)
TASK_UTILS = Registry('task util', parent=mme.TASK_UTILS, scope=SCOPE)
VISUALIZERS = Registry('visualizer', parent=mme.VISUALIZERS, scope=SCOPE)
VISBACKENDS = Registry('vis backend', parent=mme.VISBACKENDS, scope=SCOPE)
LOG_PROCESSORS = Registry(
    'log processor', parent=mme.LOG_PROCESSORS, scope=SCOPE
)
RUNNERS = Registry('runner', parent=mme.RUNNERS, scope=SCOPE)
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor', parent=mme.RUNNER_CONSTRUCTORS, scope=SCOPE
)
LOOPS = Registry('loop', parent=mme.LOOPS, scope=SCOPE)
OPTIMIZERS = Registry('optimizer', parent=mme.OPTIMIZERS, scope=SCOPE)
OPTIM_WRAPPERS = Registry(
    'optim wrapper', parent=mme.OPTIM_WRAPPERS, scope=SCOPE
)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optim wrapper constructor',
    parent=mme.OPTIM_WRAPPER_CONSTRUCTORS,
    scope=SCOPE,
)
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=mme.PARAM_SCHEDULERS, scope=SCOPE
)
FUNCTIONS = Registry('function', parent=mme.FUNCTIONS, scope=SCOPE)
INFERENCERS = Registry('inferencer', parent=mme.INFERENCERS, scope=SCOPE)

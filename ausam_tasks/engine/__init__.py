from .checkpoint import (
    allow_mmengine_checkpoints,
    check_state_dict,
    load_checkpoint_file,
)
from .diagnostics_hook import SelectionDiagnosticsHook
from .hooks import (
    CheckpointCheckHook,
    RandomStreamsHook,
    SharpnessAwareLoggerHook,
)
from .methods.esam import ESAMOptimWrapper
from .methods.ksam import KSAMOptimWrapper
from .methods.late_phase import LatePhaseSAMOptimWrapper
from .methods.looksam import LookSAMOptimWrapper
from .methods.mesa import MESAOptimWrapper
from .methods.msam import MSAMOptimWrapper
from .methods.rst import RSTOptimWrapper
from .methods.saf import SAFOptimWrapper
from .model import SAMDistributedDataParallel, SAMTrainStepMixin
from .optim_wrapper import (
    AUSAMOptimWrapper,
    AutocastOptimWrapper,
    SAMOptimWrapper,
)
from .protocol import (
    PROTOCOL,
    LossClosure,
    per_sample_losses,
    sam_train_step,
    sample_indices,
    subset_batch,
)

__all__ = [
    'AUSAMOptimWrapper',
    'AutocastOptimWrapper',
    'ESAMOptimWrapper',
    'CheckpointCheckHook',
    'KSAMOptimWrapper',
    'LatePhaseSAMOptimWrapper',
    'LookSAMOptimWrapper',
    'RSTOptimWrapper',
    'LossClosure',
    'MESAOptimWrapper',
    'MSAMOptimWrapper',
    'PROTOCOL',
    'SAFOptimWrapper',
    'RandomStreamsHook',
    'SAMOptimWrapper',
    'SAMTrainStepMixin',
    'SelectionDiagnosticsHook',
    'SharpnessAwareLoggerHook',
    'SAMDistributedDataParallel',
    'allow_mmengine_checkpoints',
    'check_state_dict',
    'load_checkpoint_file',
    'per_sample_losses',
    'sam_train_step',
    'sample_indices',
    'subset_batch',
]

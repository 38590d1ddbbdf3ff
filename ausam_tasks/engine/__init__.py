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
    SharpnessAwareStateHook,
)
from .infobatch import (
    InfoBatchHook,
    InfoBatchParamSchedulerHook,
    InfoBatchSampler,
)
from .methods import (
    AUSAMOptimWrapper,
    ESAMOptimWrapper,
    KSAMOptimWrapper,
    LatePhaseSAMOptimWrapper,
    LookSAMOptimWrapper,
    MESAOptimWrapper,
    MSAMOptimWrapper,
    PlainOptimWrapper,
    RSTOptimWrapper,
    SAFOptimWrapper,
)
from .model import SAMDistributedDataParallel, SAMTrainStepMixin
from .optim_wrapper import AutocastOptimWrapper, SAMOptimWrapper
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
    'InfoBatchHook',
    'InfoBatchParamSchedulerHook',
    'InfoBatchSampler',
    'CheckpointCheckHook',
    'KSAMOptimWrapper',
    'LatePhaseSAMOptimWrapper',
    'LookSAMOptimWrapper',
    'RSTOptimWrapper',
    'LossClosure',
    'MESAOptimWrapper',
    'MSAMOptimWrapper',
    'PlainOptimWrapper',
    'PROTOCOL',
    'SAFOptimWrapper',
    'RandomStreamsHook',
    'SAMOptimWrapper',
    'SAMTrainStepMixin',
    'SelectionDiagnosticsHook',
    'SharpnessAwareLoggerHook',
    'SharpnessAwareStateHook',
    'SAMDistributedDataParallel',
    'allow_mmengine_checkpoints',
    'check_state_dict',
    'load_checkpoint_file',
    'per_sample_losses',
    'sam_train_step',
    'sample_indices',
    'subset_batch',
]

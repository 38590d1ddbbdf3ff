from .checkpoint import allow_mmengine_checkpoints, load_checkpoint_file
from .hooks import SharpnessAwareLoggerHook
from .model import SAMDistributedDataParallel, SAMTrainStepMixin
from .optim_wrapper import (
    AUSAMOptimWrapper,
    SAMOptimWrapper,
    per_sample_losses,
    sample_indices,
    subset_batch,
)

__all__ = [
    'AUSAMOptimWrapper',
    'SAMOptimWrapper',
    'SAMTrainStepMixin',
    'SharpnessAwareLoggerHook',
    'SAMDistributedDataParallel',
    'allow_mmengine_checkpoints',
    'load_checkpoint_file',
    'per_sample_losses',
    'sample_indices',
    'subset_batch',
]

"""SimCC human pose estimation on MPII (registry scope ``tasks.pose_simcc``).

mmpose supplies the dataset, transforms, SimCC codec and PCKh metric; the
models are this package's own, because ``mmpose.models`` does not import on
this stack.
"""

from . import registry  # noqa: F401  (registers the scope's nodes)
from .evaluation import PCKhTableHook, format_pckh_table, pckh_row
from .models import (
    KLDiscreteLoss,
    PoseDataPreprocessor,
    ResNet,
    SimCCHead,
    TinyConvNet,
    TopdownPoseEstimator,
)

__all__ = [
    'KLDiscreteLoss',
    'PCKhTableHook',
    'PoseDataPreprocessor',
    'ResNet',
    'SimCCHead',
    'TinyConvNet',
    'TopdownPoseEstimator',
    'format_pckh_table',
    'pckh_row',
]

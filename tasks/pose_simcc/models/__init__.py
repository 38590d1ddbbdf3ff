from .data_preprocessor import PoseDataPreprocessor
from .kl_discrete_loss import KLDiscreteLoss
from .resnet import ResNet
from .simcc_head import SimCCHead
from .tiny_convnet import TinyConvNet
from .topdown_estimator import TopdownPoseEstimator

__all__ = [
    'KLDiscreteLoss',
    'PoseDataPreprocessor',
    'ResNet',
    'SimCCHead',
    'TinyConvNet',
    'TopdownPoseEstimator',
]

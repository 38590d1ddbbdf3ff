"""Classification networks (plain constructors) and the mmengine classifier
around them."""

from ..registry import MODELS
from .cifar_resnet import CifarResNet, cifar_resnet
from .mobilenet_v1 import MobileNetV1, mobilenet_v1
from .pyramidnet import PyramidNet, pyramidnet110
from .resnet import ResNet, resnet18, resnet50
from .wide_resnet import WideResNet, wide_resnet28_10

# Only the constructors are registered (lower-case names,
# `net=dict(type='resnet18', ...)`), so the class names stay free for other
# tasks sharing the ausam_tasks scope.
for _fn in (
    resnet18,
    resnet50,
    wide_resnet28_10,
    pyramidnet110,
    mobilenet_v1,
    cifar_resnet,
):
    MODELS.register_module(name=_fn.__name__, module=_fn)

__all__ = [
    'ResNet',
    'resnet18',
    'resnet50',
    'WideResNet',
    'wide_resnet28_10',
    'PyramidNet',
    'pyramidnet110',
    'MobileNetV1',
    'mobilenet_v1',
    'CifarResNet',
    'cifar_resnet',
]

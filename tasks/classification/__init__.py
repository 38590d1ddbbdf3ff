"""Image classification: the paper's CIFAR / Tiny-ImageNet experiments (models,
data, metric)."""

from . import augment, models  # noqa: F401  (models registers the networks)
from .classifier import ImageClassifier
from .data_preprocessor import ClsDataPreprocessor
from .data_sample import ClsDataSample
from .datasets import CIFAR10, CIFAR100, ImageFolder, TinyImageNet
from .device_data import DeviceCIFAR10, DeviceCIFAR100
from .metrics import Accuracy
from .transforms import AlbuClsAugment, LoadClsImage, PackClsInputs

__all__ = [
    'ImageClassifier',
    'ClsDataPreprocessor',
    'ClsDataSample',
    'CIFAR10',
    'CIFAR100',
    'DeviceCIFAR10',
    'DeviceCIFAR100',
    'ImageFolder',
    'TinyImageNet',
    'Accuracy',
    'AlbuClsAugment',
    'LoadClsImage',
    'PackClsInputs',
]

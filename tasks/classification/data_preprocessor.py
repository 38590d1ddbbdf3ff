"""Data preprocessor: stack uint8 images, and in the batch path augment them on
the device."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from . import augment
from .device_data import BatchSamples
from .registry import MODELS


@MODELS.register_module()
class ClsDataPreprocessor(BaseDataPreprocessor):
    """Stacks ``inputs`` into (B, C, H, W), moves the batch to the model's
    device, then:

    - training with ``batch_augment`` (the batch path): pad-and-crop and flip
      on the uint8 batch, normalise, Cutout (fill 0 = the mean colour), all
      vectorised on the device;
    - normalises uint8 inputs with ``mean``/``std`` (0-255 units). With
      ``mean=None`` inputs must already be normalised floats (the CPU
      augmentation path does it per image);
    - ``resize_to``: bilinear resize after augmentation (MobileNetV1 at 224 on
      Tiny-ImageNet).

    Args:
        batch_augment: e.g. ``dict(padding=4, flip_prob=0.5, cutout_size=16)``,
            or None.
    """

    def __init__(
        self,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        batch_augment: Optional[dict] = None,
        resize_to: Optional[int] = None,
        non_blocking: bool = False,
    ):
        super().__init__(non_blocking)
        if (mean is None) != (std is None):
            raise ValueError(
                'ClsDataPreprocessor needs both mean and std, or neither'
            )
        self.normalize = mean is not None
        if self.normalize:
            self.register_buffer(
                'mean',
                torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1),
                False,
            )
            self.register_buffer(
                'std',
                torch.tensor(std, dtype=torch.float32).view(-1, 1, 1),
                False,
            )
        if batch_augment is not None:
            unknown = set(batch_augment) - {
                'padding',
                'flip_prob',
                'cutout_size',
            }
            if unknown:
                raise ValueError(
                    f'unknown batch_augment keys {sorted(unknown)}; '
                    'allowed: padding, flip_prob, cutout_size'
                )
            if not self.normalize:
                raise ValueError(
                    'batch_augment works on uint8 batches and needs mean/std '
                    'to normalise'
                )
        self.batch_augment = dict(batch_augment or {})
        self.resize_to = resize_to

    def forward(self, data: dict, training: bool = False) -> dict:
        samples = data.get('data_samples')
        if isinstance(samples, BatchSamples):
            # A device batch: cast_data would rebuild the list without its
            # label tensor.
            data = self.cast_data(
                {k: v for k, v in data.items() if k != 'data_samples'}
            )
            samples.gt_labels = samples.gt_labels.to(self.device)
            data['data_samples'] = samples
        else:
            data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs))
        aug = self.batch_augment if training else {}
        if aug:
            if inputs.dtype != torch.uint8:
                raise TypeError(
                    f'the batch augmentation path expects uint8 images, got '
                    f'{inputs.dtype}: '
                    'drop AlbuClsAugment from the pipeline or set '
                    'batch_augment=None'
                )
            inputs = augment.random_crop(inputs, aug.get('padding', 4))
            inputs = augment.random_flip(inputs, aug.get('flip_prob', 0.5))
        if self.normalize:
            if inputs.is_floating_point():
                raise TypeError(
                    'ClsDataPreprocessor got float images but has mean/std '
                    'set: the pipeline '
                    'already normalised them; set mean=None, std=None'
                )
            inputs = (inputs.float() - self.mean) / self.std
        elif not inputs.is_floating_point():
            raise TypeError(
                'ClsDataPreprocessor got uint8 images with mean=None: set '
                'mean/std '
                'or normalise in the pipeline (AlbuClsAugment)'
            )
        if aug and aug.get('cutout_size', 16) > 0:
            inputs = augment.cutout(inputs, aug.get('cutout_size', 16), 0.0)
        if self.resize_to and inputs.shape[-1] != self.resize_to:
            inputs = F.interpolate(
                inputs,
                size=(self.resize_to, self.resize_to),
                mode='bilinear',
                align_corners=False,
                antialias=False,
            )
        return dict(inputs=inputs, data_samples=data.get('data_samples'))

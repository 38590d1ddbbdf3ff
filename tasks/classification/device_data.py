"""The on-device data path: CIFAR held as one uint8 tensor on the training
device, served a whole batch at a time.

``DeviceCIFAR10`` reads the same pickle batches as ``CIFAR10`` and, through
torch's batched fetch (``__getitems__``), turns the sampler's indices of a
batch into one gather on the device: no per-image transforms, collation or
worker processes. Batch augmentation (crop, flip, Cutout) already runs on
the device in ``ClsDataPreprocessor``. The sampler is mmengine's own
(``DefaultSampler``), so shuffling, seeds and resuming are unchanged.

Use it with ``collate_fn=dict(type='device_batch_collate')`` and
``num_workers=0`` (as in
``configs/classification/resnet18_ausam-a0.5_1xb128-fast_cifar10.py``).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.registry import FUNCTIONS

from ausam_tasks.scores import to_device

from .data_sample import ClsDataSample
from .datasets import CIFAR10, CIFAR100
from .registry import DATASETS

COLLATE_HINT = (
    "set collate_fn=dict(type='device_batch_collate') in the dataloader config"
)


class SampleRow:
    """One sample of a device batch: what the SAM-family protocol reads
    (``get('sample_idx')``) and its label as an int. Cheaper than a
    ``ClsDataSample`` (a few hundred per step)."""

    __slots__ = ('sample_idx', 'label')

    def __init__(self, sample_idx: int, label: int):
        self.sample_idx, self.label = sample_idx, label

    def get(self, key: str, default=None):
        return self.sample_idx if key == 'sample_idx' else default

    @property
    def gt_label(self) -> torch.Tensor:
        return torch.tensor(self.label)


class BatchSamples(list):
    """The data samples of one device batch: a list of ``SampleRow`` (the
    protocol indexes data samples as a list) that also carries the batch's
    labels as one tensor on the device, so the model needs no per-sample
    stacking for the whole batch."""

    def __init__(self, rows: Sequence[SampleRow], gt_labels: torch.Tensor):
        super().__init__(rows)
        self.gt_labels = gt_labels


class DeviceBatch(dict):
    """``dict(inputs=(B, 3, 32, 32) uint8, data_samples=...)``; a collate
    function that indexes it like a list of samples gets a clear error."""

    def __missing__(self, key):
        raise KeyError(
            f'a DeviceCIFAR batch has no entry {key!r}: it is a whole '
            f'batch, not a list of samples; {COLLATE_HINT}'
        )


@FUNCTIONS.register_module()
def device_batch_collate(batch):
    """The collate function of the device datasets: the batch is already
    one (``__getitems__`` built it)."""
    if not isinstance(batch, DeviceBatch):
        raise TypeError(
            'device_batch_collate serves DeviceCIFAR10/DeviceCIFAR100 only, '
            f'got a batch of {type(batch).__name__}'
        )
    return batch


def resolve_device(device: str) -> torch.device:
    if device == 'auto':
        if torch.cuda.is_available():
            # The rank's device: mmengine sets it before any dataloader.
            return torch.device('cuda', torch.cuda.current_device())
        return torch.device('cpu')
    return torch.device(device)


class _DeviceCifarMixin:
    """Holds the dataset as ``images`` (N, 3, 32, 32) uint8 and ``labels``
    (N,) int64 on ``device``; ``sample_idx`` is the dataset index, as in
    the plain pipeline. Training batches carry ``BatchSamples``; with
    ``split='test'`` they carry ``ClsDataSample``s, which evaluation fills
    with predictions."""

    def __init__(self, *args, device: str = 'auto', **kwargs):
        self.device = resolve_device(device)
        self.images: Optional[torch.Tensor] = None
        self.labels: Optional[torch.Tensor] = None
        super().__init__(*args, **kwargs)
        if self.pipeline.transforms:
            raise ValueError(
                f'{type(self).__name__} serves whole batches without a '
                'per-image pipeline: set pipeline=[] (augmentation runs in '
                'ClsDataPreprocessor.batch_augment)'
            )

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        super().full_init()
        # Once per run: the image index and label of every dataset index
        # (after any ``indices`` subset).
        infos = [
            super(_DeviceCifarMixin, self).get_data_info(i)
            for i in range(len(self))
        ]
        order = np.fromiter((d['img_index'] for d in infos), np.int64)
        labels = np.fromiter((d['gt_label'] for d in infos), np.int64)
        images = torch.from_numpy(self._images[order]).permute(0, 3, 1, 2)
        self.images = images.contiguous().to(self.device)
        self.labels = torch.from_numpy(labels).to(self.device)
        self._labels_list = labels.tolist()
        self._images = None  # the device copy replaces the host one

    def get_data_info(self, idx: int) -> dict:
        return dict(
            img=self.images[idx].permute(1, 2, 0).cpu().numpy(),
            gt_label=self._labels_list[idx],
            sample_idx=idx,
        )

    def __getitem__(self, idx: int):
        return self.__getitems__([idx])

    def __getitems__(self, indices: List[int]) -> DeviceBatch:
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError(
                f'{type(self).__name__} gathers batches on the training '
                'device in the main process: set num_workers=0 and '
                'persistent_workers=False in the dataloader config'
            )
        if not self._fully_initialized:
            self.full_init()
        indices = [int(i) for i in indices]
        # Pinned and non-blocking: a pageable copy would stall the host on
        # every batch (the GPU idles while the next step is queued).
        pos = to_device(torch.tensor(indices, dtype=torch.int64), self.device)
        images = self.images.index_select(0, pos)
        labels = [self._labels_list[i] for i in indices]
        if self.split == 'test':
            samples = []
            for i, lab in zip(indices, labels):
                s = ClsDataSample(metainfo=dict(sample_idx=i))
                s.gt_label = lab
                samples.append(s)
        else:
            samples = BatchSamples(
                [SampleRow(i, lab) for i, lab in zip(indices, labels)],
                self.labels.index_select(0, pos),
            )
        return DeviceBatch(inputs=images, data_samples=samples)


@DATASETS.register_module()
class DeviceCIFAR10(_DeviceCifarMixin, CIFAR10):
    """CIFAR-10 on the training device (``device='auto'``: the current
    CUDA device, else the CPU)."""


@DATASETS.register_module()
class DeviceCIFAR100(_DeviceCifarMixin, CIFAR100):
    """CIFAR-100 on the training device."""

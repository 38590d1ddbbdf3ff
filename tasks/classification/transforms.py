"""Per-image transforms: image loading, the albumentations CPU augmentation
path, packing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import albumentations as A
import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform

from .data_sample import ClsDataSample
from .registry import TRANSFORMS

CIFAR_MEAN = (125.307, 122.961, 113.8575)  # 0-255 units, CIFAR-10 training set
CIFAR_STD = (51.5865, 50.847, 51.255)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an RGB uint8 HxWx3 array; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'image file not found: {path}')
    buf = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise ValueError(
            f'cannot decode image file {path}: it is corrupt or not an image '
            '(re-extract or delete it)'
        )
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@TRANSFORMS.register_module()
class LoadClsImage(BaseTransform):
    """Put ``results['img']`` (RGB uint8 HxWx3): read ``img_path`` unless the
    dataset gave pixels."""

    def transform(self, results: dict) -> dict:
        if results.get('img') is None:
            if 'img_path' not in results:
                raise KeyError(
                    'LoadClsImage needs `img` or `img_path` in the data info'
                )
            results['img'] = read_image(results['img_path'])
        results['img_shape'] = results['img'].shape[:2]
        return results


class Cutout(A.ImageOnlyTransform):
    """DeVries & Taylor's Cutout: the centre is uniform over the whole image
    and the square is clipped at the border (albumentations' CoarseDropout
    keeps holes inside instead)."""

    def __init__(self, size: int = 16, fill: float = 0.0, p: float = 1.0):
        super().__init__(p=p)
        self.size = size
        self.fill = fill

    def get_params_dependent_on_data(self, params, data):
        h, w = params['shape'][:2]
        return {
            'cy': self.py_random.randrange(h),
            'cx': self.py_random.randrange(w),
        }

    def apply(self, img, cy: int = 0, cx: int = 0, **params):
        h, w = img.shape[:2]
        top, left = cy - self.size // 2, cx - self.size // 2
        img = img.copy()
        img[
            max(top, 0) : min(top + self.size, h),
            max(left, 0) : min(left + self.size, w),
        ] = self.fill
        return img

    def get_transform_init_args_names(self):
        return ('size', 'fill')


@TRANSFORMS.register_module()
class AlbuClsAugment(BaseTransform):
    """The CPU augmentation path: the same crop / flip / Cutout as
    ``augment.py`` plus normalisation, per image with albumentations. Output:
    float32 HxWx3 normalised image.

    ``train=False`` only normalises (and resizes). ``mean``/``std`` are in
    0-255 units. ``resize_to`` resizes after augmentation (e.g. 64 -> 224 for
    MobileNetV1 on Tiny-ImageNet).
    """

    def __init__(
        self,
        train: bool = True,
        padding: int = 4,
        flip_prob: float = 0.5,
        cutout_size: int = 16,
        mean: Sequence[float] = CIFAR_MEAN,
        std: Sequence[float] = CIFAR_STD,
        resize_to: Optional[int] = None,
    ):
        self.train = train
        ops = []
        self._pad = padding
        if train:
            if flip_prob > 0:
                ops.append(A.HorizontalFlip(p=flip_prob))
        ops.append(
            A.Normalize(
                mean=[m / 255 for m in mean],
                std=[s / 255 for s in std],
                max_pixel_value=255.0,
            )
        )
        if train and cutout_size > 0:
            ops.append(Cutout(cutout_size, fill=0.0))
        if resize_to:
            ops.append(
                A.Resize(resize_to, resize_to, interpolation=cv2.INTER_LINEAR)
            )
        self._ops = ops
        self._compose = None
        self._pid = None

    def _pipeline(self, h: int, w: int) -> A.Compose:
        # Built per image size; reseeded in each dataloader worker, because a
        # Compose forked from the main process would repeat the same random
        # stream in every worker.
        if self._compose is None or self._compose_hw != (h, w):
            ops = list(self._ops)
            if self.train and self._pad > 0:
                ops = [
                    A.PadIfNeeded(
                        h + 2 * self._pad,
                        w + 2 * self._pad,
                        border_mode=cv2.BORDER_CONSTANT,
                        fill=0,
                    ),
                    A.RandomCrop(h, w),
                ] + ops
            self._compose = A.Compose(ops)
            self._compose_hw = (h, w)
            self._pid = None
        if self._pid != os.getpid():
            self._compose.set_random_seed(torch.initial_seed() % 2**32)
            self._pid = os.getpid()
        return self._compose

    def transform(self, results: dict) -> dict:
        img = results['img']
        results['img'] = self._pipeline(*img.shape[:2])(image=img)['image']
        return results


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """-> dict(inputs=CxHxW tensor (uint8 or float),
    data_samples=ClsDataSample).

    The sample's metainfo carries ``sample_idx`` (the dataset index AUSAM
    scores by) and the keys in ``meta_keys`` that the data info has.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('sample_idx', 'img_path', 'img_shape'),
    ):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(results['img'])
        if img.ndim == 2:
            img = img[:, :, None]
        inputs = torch.from_numpy(img).permute(2, 0, 1).contiguous()
        sample = ClsDataSample(
            metainfo={k: results[k] for k in self.meta_keys if k in results}
        )
        if 'gt_label' in results:
            sample.gt_label = int(results['gt_label'])
        return dict(inputs=inputs, data_samples=sample)

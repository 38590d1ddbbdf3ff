"""Classification datasets: CIFAR-10/100 pickles, image folders, Tiny-ImageNet.

Every dataset is an mmengine ``BaseDataset``; ``get_data_info(i)`` carries
``sample_idx=i`` (mmengine adds it), which ``PackClsInputs`` moves into the
data sample for AUSAM's score table.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from .registry import DATASETS, TRANSFORMS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')

_CIFAR = {
    'cifar10': dict(
        folder='cifar-10-batches-py',
        meta='batches.meta',
        names_key='label_names',
        label_key='labels',
        train=[f'data_batch_{i}' for i in range(1, 6)],
        test=['test_batch'],
        url='https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz',
        md5='c58f30108f718f92721af3b95e74349a',
    ),
    'cifar100': dict(
        folder='cifar-100-python',
        meta='meta',
        names_key='fine_label_names',
        label_key='fine_labels',
        train=['train'],
        test=['test'],
        url='https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz',
        md5='eb9058c3a382ffc7106e4002c42a8d85',
    ),
}


def _build_pipeline(kwargs: dict) -> dict:
    """Build transform configs from this scope's registry, so a dataset built
    outside a Runner (no default scope set) still finds the project's
    transforms."""
    pipeline = kwargs.get('pipeline') or []
    kwargs['pipeline'] = [
        TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline
    ]
    return kwargs


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f'CIFAR batch file not found: {path} (set data_root to the folder '
            'holding it, or pass download=True)'
        )
    try:
        with open(path, 'rb') as f:
            return pickle.load(f, encoding='latin1')
    except Exception as e:  # truncated or foreign file
        raise ValueError(f'cannot read CIFAR batch file {path}: {e}') from e


class _CifarBase(BaseDataset):
    """Images from the official python pickle batches, held in memory as N x 32
    x 32 x 3 uint8.

    ``data_root`` may be the batch folder itself (``cifar-10-batches-py``) or
    its parent. ``download=True`` fetches and extracts the official archive
    into ``data_root`` first.
    """

    variant = 'cifar10'

    def __init__(
        self,
        data_root: str,
        split: str = 'train',
        download: bool = False,
        **kwargs,
    ):
        if split not in ('train', 'test'):
            raise ValueError(
                f"{type(self).__name__} split must be 'train' or 'test', got "
                f'{split!r}'
            )
        self.split = split
        self.download = download
        self._images: Optional[np.ndarray] = None
        super().__init__(data_root=data_root, **_build_pipeline(kwargs))

    def _batch_dir(self) -> Path:
        spec = _CIFAR[self.variant]
        root = Path(self.data_root)
        if root.name == spec['folder']:
            return root
        if not (root / spec['folder']).is_dir() and self.download:
            from torchvision.datasets.utils import download_and_extract_archive

            try:
                download_and_extract_archive(
                    spec['url'], str(root), md5=spec['md5']
                )
            except (OSError, RuntimeError) as e:  # URLError is an OSError
                raise RuntimeError(
                    f'{type(self).__name__}: downloading {spec["url"]} '
                    f'failed ({type(e).__name__}: {e}). Offline, place the '
                    f'official {spec["folder"]}/ folder (the extracted '
                    f'archive) at {root.resolve() / spec["folder"]}, or '
                    'train on an image folder instead: tools/train.py '
                    'CONFIG --image-folder DIR with DIR/train/<class>/'
                    '<image> and DIR/val/<class>/<image>.'
                ) from None
        return root / spec['folder']

    def load_data_list(self) -> List[dict]:
        spec = _CIFAR[self.variant]
        folder = self._batch_dir()
        images, labels = [], []
        for name in spec[self.split]:
            entry = _unpickle(folder / name)
            data = np.asarray(entry['data'], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072:
                raise ValueError(
                    f'CIFAR batch file {folder / name} holds data of shape '
                    f'{data.shape}, '
                    'expected (N, 3072)'
                )
            images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels.extend(int(v) for v in entry[spec['label_key']])
        meta_file = folder / spec['meta']
        if meta_file.is_file() and 'classes' not in self._metainfo:
            self._metainfo['classes'] = tuple(
                _unpickle(meta_file)[spec['names_key']]
            )
        self._images = np.ascontiguousarray(np.concatenate(images))
        return [
            dict(img_index=i, gt_label=lab) for i, lab in enumerate(labels)
        ]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info['img'] = self._images[info['img_index']]
        return info


@DATASETS.register_module()
class CIFAR10(_CifarBase):
    variant = 'cifar10'


@DATASETS.register_module()
class CIFAR100(_CifarBase):
    variant = 'cifar100'


@DATASETS.register_module()
class ImageFolder(BaseDataset):
    """``data_root/<class>/<image>``; classes are the sorted sub-folder names.

    A fixed, class-balanced split for quick experiments: within each class the
    files are shuffled with ``split_seed``; the first ``holdout_per_class``
    form ``part='holdout'``, the rest ``part='train'`` (capped at
    ``train_per_class``). ``part='all'`` keeps every file.
    """

    def __init__(
        self,
        data_root: str,
        part: str = 'all',
        holdout_per_class: int = 0,
        train_per_class: Optional[int] = None,
        split_seed: int = 0,
        extensions: Sequence[str] = IMG_EXTENSIONS,
        **kwargs,
    ):
        if part not in ('all', 'train', 'holdout'):
            raise ValueError(
                f"ImageFolder part must be 'all', 'train' or 'holdout', got "
                f'{part!r}'
            )
        self.part = part
        self.holdout_per_class = holdout_per_class
        self.train_per_class = train_per_class
        self.split_seed = split_seed
        self.extensions = tuple(e.lower() for e in extensions)
        super().__init__(data_root=data_root, **_build_pipeline(kwargs))

    def load_data_list(self) -> List[dict]:
        root = Path(self.data_root)
        if not root.is_dir():
            raise FileNotFoundError(f'ImageFolder data_root not found: {root}')
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not classes:
            raise ValueError(
                f'ImageFolder found no class folders in {root} (expected '
                f'root/<class>/<image>)'
            )
        self._metainfo.setdefault('classes', tuple(classes))
        data_list = []
        rng = random.Random(self.split_seed)
        for label, name in enumerate(classes):
            files = sorted(
                p
                for p in (root / name).iterdir()
                if p.suffix.lower() in self.extensions
            )
            if self.part != 'all':
                rng.shuffle(files)
                hold, rest = (
                    files[: self.holdout_per_class],
                    files[self.holdout_per_class :],
                )
                files = (
                    hold
                    if self.part == 'holdout'
                    else rest[: self.train_per_class]
                )
            data_list += [dict(img_path=str(f), gt_label=label) for f in files]
        if not data_list:
            raise ValueError(
                f'ImageFolder found no images with extensions '
                f'{self.extensions} under {root}'
            )
        return data_list


@DATASETS.register_module()
class TinyImageNet(BaseDataset):
    """Tiny-ImageNet-200 in its released layout under ``data_root``::

    wnids.txt                    class ids, one per line (label = line)
    train/<wnid>/images/*.JPEG
    val/images/*.JPEG
    val/val_annotations.txt      file \\t wnid \\t box, one image per line
    """

    def __init__(self, data_root: str, split: str = 'train', **kwargs):
        if split not in ('train', 'val'):
            raise ValueError(
                f"TinyImageNet split must be 'train' or 'val', got {split!r}"
            )
        self.split = split
        super().__init__(data_root=data_root, **_build_pipeline(kwargs))

    def load_data_list(self) -> List[dict]:
        root = Path(self.data_root)
        wnids_file = root / 'wnids.txt'
        if not wnids_file.is_file():
            raise FileNotFoundError(
                f'Tiny-ImageNet class list not found: {wnids_file} '
                '(data_root must be the extracted tiny-imagenet-200 folder)'
            )
        wnids = [
            w.strip() for w in wnids_file.read_text().splitlines() if w.strip()
        ]
        label_of = {w: i for i, w in enumerate(wnids)}
        self._metainfo.setdefault('classes', tuple(wnids))
        data_list = []
        if self.split == 'train':
            for wnid in wnids:
                folder = root / 'train' / wnid / 'images'
                if not folder.is_dir():
                    raise FileNotFoundError(
                        f'Tiny-ImageNet training folder not found: {folder}'
                    )
                data_list += [
                    dict(img_path=str(p), gt_label=label_of[wnid])
                    for p in sorted(folder.iterdir())
                    if p.suffix.lower() in IMG_EXTENSIONS
                ]
        else:
            ann = root / 'val' / 'val_annotations.txt'
            if not ann.is_file():
                raise FileNotFoundError(
                    f'Tiny-ImageNet validation annotations not found: {ann}'
                )
            for n, line in enumerate(ann.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split('\t')
                if len(parts) < 2 or parts[1] not in label_of:
                    raise ValueError(
                        f'{ann}, line {n}: expected "<file>\\t<wnid>\\t...", '
                        f'with a wnid '
                        f'from wnids.txt; got {line!r}'
                    )
                data_list.append(
                    dict(
                        img_path=str(root / 'val' / 'images' / parts[0]),
                        gt_label=label_of[parts[1]],
                    )
                )
        return data_list

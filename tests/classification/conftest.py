"""Fixture data in the three layouts the classification datasets read
(generated, tiny)."""

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

from tasks.classification.data_prep import (
    synthetic_images,
    write_cifar_pickles,
    write_image_folder,
)


@pytest.fixture(scope='session')
def cifar10_root(tmp_path_factory):
    """CIFAR-10 pickle batches: 20 training and 8 test images."""
    root = tmp_path_factory.mktemp('cifar10')
    imgs, labels = synthetic_images(28, 10, seed=1)
    write_cifar_pickles(
        root,
        imgs[:20],
        labels[:20],
        'cifar10',
        imgs[20:],
        labels[20:],
        classes=[f'c{i}' for i in range(10)],
    )
    return root


@pytest.fixture(scope='session')
def cifar100_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('cifar100')
    imgs, labels = synthetic_images(12, 100, seed=2)
    labels[0] = 99  # the meta file lists 100 class names
    write_cifar_pickles(
        root, imgs[:8], labels[:8], 'cifar100', imgs[8:], labels[8:]
    )
    return root


@pytest.fixture(scope='session')
def image_folder_root(tmp_path_factory):
    """root/<class>/*.jpg with 3 classes x 6 images."""
    root = tmp_path_factory.mktemp('folder')
    imgs, _ = synthetic_images(18, 3, seed=3)
    labels = np.repeat(np.arange(3), 6)
    write_image_folder(
        root, imgs, labels, ext='.jpg', classes=['ant', 'bee', 'cat']
    )
    return root


@pytest.fixture(scope='session')
def tiny_imagenet_root(tmp_path_factory):
    """Tiny-ImageNet's released layout, 3 classes, 64x64 JPEGs (one grayscale,
    as in the real set)."""
    root = tmp_path_factory.mktemp('tiny') / 'tiny-imagenet-200'
    wnids = ['n01443537', 'n01629819', 'n01641577']
    (root / 'val' / 'images').mkdir(parents=True)
    (root / 'wnids.txt').write_text('\n'.join(wnids) + '\n')
    imgs, _ = synthetic_images(18, 3, size=64, seed=4)
    k = 0
    for w in wnids:
        d = root / 'train' / w / 'images'
        d.mkdir(parents=True)
        (root / 'train' / w / f'{w}_boxes.txt').write_text('')
        for i in range(4):
            img = imgs[k]
            if k == 0:
                img = cv2.cvtColor(
                    cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB
                )[:, :, 0]
            cv2.imwrite(
                str(d / f'{w}_{i}.JPEG'),
                img if img.ndim == 2 else img[:, :, ::-1],
            )
            k += 1
    lines = []
    for i in range(6):
        name = f'val_{i}.JPEG'
        cv2.imwrite(
            str(root / 'val' / 'images' / name), imgs[12 + i][:, :, ::-1]
        )
        lines.append(f'{name}\t{wnids[i % 3]}\t0\t0\t63\t63')
    (root / 'val' / 'val_annotations.txt').write_text('\n'.join(lines) + '\n')
    return root


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The test machine's cores are shared: one intra-op thread is several
    times faster there than two threads spinning against other processes."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def classification_scope():
    """Build from this task's scope, whatever scope an earlier test's Runner
    left current; restored afterwards."""
    with DefaultScope.overwrite_default_scope('tasks.classification'):
        yield

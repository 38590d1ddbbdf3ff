"""Data preparation helpers: extract the CIFAR-10 JPEG archive once into a
cache folder (train/ and a held-out val/), write CIFAR-style pickle batches,
generate a small synthetic image folder. Locations are always arguments."""

from __future__ import annotations

import os
import pickle
import random
import shutil
import tarfile
from pathlib import Path
from typing import Optional

import numpy as np

CIFAR10_CLASSES = (
    'airplane',
    'automobile',
    'bird',
    'cat',
    'deer',
    'dog',
    'frog',
    'horse',
    'ship',
    'truck',
)


HOLDOUT_PER_CLASS = 500


def extract_cifar10_jpg(
    cache_dir: str | os.PathLike,
    archive: str | os.PathLike,
    per_class: Optional[int] = None,
    holdout_per_class: int = HOLDOUT_PER_CLASS,
    seed: int = 0,
) -> Path:
    """Extract ``train/<class>/*.jpg`` from ``archive`` once into
    ``cache_dir/train`` plus a held-out ``cache_dir/val``; returns the
    ``train`` folder. ``cache_dir`` is then ready for ``tools/train.py
    --image-folder``.

    ``val/`` holds ``holdout_per_class`` files of each class (0: no
    ``val/``), drawn with ``seed`` from the files ``train/`` does not take.
    ``train/`` holds the first ``per_class`` files of each class in archive
    order, in ``<cache_dir>-<N>pc``; without ``per_class``, every file not
    held out. A ``.complete`` marker recording the split makes reruns free
    and interrupted or differently split runs start over.
    """
    archive = Path(archive)
    cache = (
        Path(cache_dir)
        if per_class is None
        else Path(f'{cache_dir}-{per_class}pc')
    )
    marker = cache / '.complete'
    split = f'holdout_per_class={holdout_per_class} seed={seed}\n'
    if marker.is_file() and marker.read_text() == split:
        return cache / 'train'
    if not archive.is_file():
        raise FileNotFoundError(f'CIFAR-10 JPEG archive not found: {archive}')
    blobs: dict = {}  # class -> [(file name, bytes)] in archive order
    with tarfile.open(archive, 'r:gz') as tar:
        for m in tar:
            parts = Path(m.name).parts
            if (
                m.isfile()
                and len(parts) >= 3
                and parts[-3] == 'train'
                and parts[-2] not in ('.', '..')
            ):
                blob = tar.extractfile(m).read()
                blobs.setdefault(parts[-2], []).append((parts[-1], blob))
    if not blobs:
        raise ValueError(f'{archive} holds no train/<class>/<image> files')
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    rng = random.Random(seed)
    for name in sorted(blobs):
        files = blobs[name]
        need = (per_class or 0) + holdout_per_class
        if len(files) < need:
            raise ValueError(
                f'class {name} of {archive} has {len(files)} images, fewer '
                f'than {per_class} training + {holdout_per_class} held-out'
            )
        # Training files first, so train/ is the same whatever the holdout.
        train = files[:per_class] if per_class is not None else []
        rest = sorted(files[len(train) :])
        rng.shuffle(rest)
        val = rest[:holdout_per_class]
        if per_class is None:
            taken = {f for f, _ in val}
            train = [x for x in files if x[0] not in taken]
        for part, chosen in (('train', train), ('val', val)):
            if chosen:
                (cache / part / name).mkdir(parents=True)
            for file, blob in chosen:
                (cache / part / name / file).write_bytes(blob)
    marker.write_text(split)
    return cache / 'train'


def write_cifar_pickles(
    root: str | os.PathLike,
    images: np.ndarray,
    labels,
    variant: str = 'cifar10',
    test_images: Optional[np.ndarray] = None,
    test_labels=None,
    classes: Optional[list] = None,
) -> Path:
    """Write N x 32 x 32 x 3 uint8 images in the official python-pickle layout
    (for fixtures)."""
    root = Path(root)
    labels = [int(v) for v in labels]
    if variant == 'cifar10':
        folder, train_names, test_name, key, meta, names_key = (
            root / 'cifar-10-batches-py',
            [f'data_batch_{i}' for i in range(1, 6)],
            'test_batch',
            'labels',
            'batches.meta',
            'label_names',
        )
    else:
        folder, train_names, test_name, key, meta, names_key = (
            root / 'cifar-100-python',
            ['train'],
            'test',
            'fine_labels',
            'meta',
            'fine_label_names',
        )
    folder.mkdir(parents=True, exist_ok=True)

    def flat(x):
        return np.ascontiguousarray(
            x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        )

    chunks = np.array_split(np.arange(len(images)), len(train_names))
    for name, idx in zip(train_names, chunks):
        with open(folder / name, 'wb') as f:
            pickle.dump(
                {'data': flat(images[idx]), key: [labels[i] for i in idx]}, f
            )
    if test_images is None:
        test_images, test_labels = images, labels
    with open(folder / test_name, 'wb') as f:
        pickle.dump(
            {'data': flat(test_images), key: [int(v) for v in test_labels]}, f
        )
    n_cls = max(labels) + 1
    with open(folder / meta, 'wb') as f:
        pickle.dump(
            {names_key: classes or [f'class{i}' for i in range(n_cls)]}, f
        )
    return folder


def synthetic_images(
    num: int,
    num_classes: int = 10,
    size: int = 32,
    seed: int = 0,
    pixel_noise: float = 40.0,
    class_colours: bool = True,
    labels=None,
):
    """Learnable but not trivial images: class = (colour pair, stripe
    orientation), plus noise and random shifts. Returns (N x size x size x 3
    uint8, labels).

    ``class_colours=False`` draws each image's colour pair at random, so only
    the stripes (orientation, width) tell the class; with more
    ``pixel_noise`` that is a harder task. ``labels`` (N ints) fixes the
    classes instead of drawing them."""
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = rng.integers(0, num_classes, num)
    labels = np.asarray(labels, dtype=np.int64)
    palette = rng.integers(30, 226, (num_classes, 2, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    imgs = np.empty((num, size, size, 3), np.uint8)
    for i, c in enumerate(labels):
        angle = np.pi * (c % 5) / 5 + rng.normal(0, 0.15)
        freq = 2 * np.pi / (6 + 2 * (c // 5))
        phase = rng.uniform(0, 2 * np.pi)
        wave = (
            np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
            > 0
        )
        colours = (
            palette[c] if class_colours else rng.integers(30, 226, (2, 3))
        )
        img = np.where(wave[..., None], colours[0], colours[1]).astype(
            np.float32
        )
        img += rng.normal(0, pixel_noise, img.shape)
        imgs[i] = np.clip(img, 0, 255).astype(np.uint8)
    return imgs, labels


def write_image_folder(
    root: str | os.PathLike,
    images: np.ndarray,
    labels,
    ext: str = '.png',
    classes: Optional[list] = None,
) -> Path:
    """Save images as ``root/<class>/<n>.<ext>``."""
    import cv2

    root = Path(root)
    for i, (img, lab) in enumerate(zip(images, labels)):
        d = root / (classes[lab] if classes else f'class{int(lab):02d}')
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(
            str(d / f'{i:05d}{ext}'), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        )
    return root


def symmetric_label_noise(
    labels, fraction: float, num_classes: int, seed: int = 0
) -> tuple:
    """Flip ``round(fraction * N)`` labels, chosen uniformly without
    replacement, each to a uniformly drawn *other* class (symmetric noise as
    in the SAM paper's noisy-label experiments). Returns ``(noisy_labels,
    flipped_indices)``; the same seed gives the same flips."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f'label_noise must be in [0, 1), got {fraction}')
    if num_classes < 2:
        raise ValueError(f'label noise needs >= 2 classes, got {num_classes}')
    labels = np.asarray(labels, dtype=np.int64)
    count = round(fraction * len(labels))
    if fraction and not count:
        raise ValueError(
            f'label_noise {fraction} flips no label of {len(labels)}; '
            'use 0 for clean labels or a larger fraction'
        )
    rng = np.random.default_rng(seed)
    flipped = np.sort(rng.choice(len(labels), count, replace=False))
    noisy = labels.copy()
    # An offset in 1..C-1 lands on each other class with equal chance.
    offsets = rng.integers(1, num_classes, size=len(flipped))
    noisy[flipped] = (labels[flipped] + offsets) % num_classes
    return noisy, flipped


def write_split_folder(
    root: str | os.PathLike,
    images: np.ndarray,
    labels,
    train_per_class: int,
    val_per_class: int,
    classes: Optional[list] = None,
    label_noise: float = 0.0,
    seed: int = 0,
) -> Path:
    """Save a class-balanced split as ``root/train/<class>/`` and
    ``root/val/<class>/`` (the ``--image-folder`` layout), once: of each
    class the first ``val_per_class`` images (in the given order) are held
    out, the next ``train_per_class`` train. ``label_noise`` flips that
    fraction of the *training* labels (``symmetric_label_noise``); held-out
    labels stay clean. Returns ``root``."""
    root = Path(root)
    if (root / '.complete').is_file():
        return root
    if root.exists():
        shutil.rmtree(root)
    labels = np.asarray(labels)
    num_classes = len(classes) if classes else int(labels.max()) + 1
    val, train = [], []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < val_per_class + train_per_class:
            raise ValueError(
                f'class {c} has {len(idx)} images, fewer than '
                f'{val_per_class} held-out + {train_per_class} training'
            )
        val.extend(idx[:val_per_class])
        train.extend(idx[val_per_class : val_per_class + train_per_class])
    train_labels = labels[train]
    if label_noise:
        train_labels = symmetric_label_noise(
            train_labels, label_noise, num_classes, seed
        )[0]
    write_image_folder(root / 'val', images[val], labels[val], '.png', classes)
    write_image_folder(
        root / 'train', images[train], train_labels, '.png', classes
    )
    (root / '.complete').touch()
    return root


def cifar10_jpg_split(
    archive: str | os.PathLike,
    train_per_class: Optional[int],
    holdout_per_class: int,
    seed: int = 0,
) -> tuple:
    """Decode a fixed, disjoint, class-balanced split of the JPEG archive.

    Within each class the sorted file names are shuffled with ``seed``
    (one ``random.Random`` across the classes in sorted order); the first
    ``holdout_per_class`` are held out, the next ``train_per_class`` (None:
    all the rest) train. The held-out images do not depend on
    ``train_per_class``. Returns ``(train_x, train_y, holdout_x,
    holdout_y)``: N x 32 x 32 x 3 uint8 arrays and int64 labels.
    """
    import io

    from PIL import Image

    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f'CIFAR-10 JPEG archive not found: {archive}')
    blobs: dict = {}
    with tarfile.open(archive, 'r:gz') as tar:
        for m in tar:
            parts = Path(m.name).parts
            if m.isfile() and len(parts) >= 3 and parts[-3] == 'train':
                blobs.setdefault(parts[-2], {})[parts[-1]] = tar.extractfile(
                    m
                ).read()
    classes = sorted(blobs)
    if tuple(classes) != CIFAR10_CLASSES:
        raise ValueError(
            f'{archive} holds classes {classes}, expected {CIFAR10_CLASSES}'
        )
    rng = random.Random(seed)
    parts = {'train': ([], []), 'holdout': ([], [])}
    for label, name in enumerate(classes):
        files = sorted(blobs[name])
        rng.shuffle(files)
        if holdout_per_class + (train_per_class or 0) > len(files):
            raise ValueError(
                f'class {name} has {len(files)} images, fewer than '
                f'{holdout_per_class} held-out + {train_per_class} training'
            )
        end = (
            None
            if train_per_class is None
            else (holdout_per_class + train_per_class)
        )
        for part, chosen in (
            ('holdout', files[:holdout_per_class]),
            ('train', files[holdout_per_class:end]),
        ):
            for f in chosen:
                img = Image.open(io.BytesIO(blobs[name][f])).convert('RGB')
                parts[part][0].append(np.asarray(img, dtype=np.uint8))
                parts[part][1].append(label)
    return tuple(
        arr
        for part in ('train', 'holdout')
        for arr in (
            np.stack(parts[part][0]),
            np.asarray(parts[part][1], dtype=np.int64),
        )
    )

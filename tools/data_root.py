"""Where the demo, the benchmarks and the tests look for real data.

Library code takes data locations from arguments and configs only; these
scripts share this one default. The project's machines keep real data in
``../shared/data`` next to the repository; set ``AUSAM_DATA_ROOT`` to use
another folder. Missing data is the caller's to handle (tests skip, the demo
falls back to generated images, benchmarks stop with a message).
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = 'AUSAM_DATA_ROOT'


def data_root() -> Path:
    """``$AUSAM_DATA_ROOT``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get(ENV_VAR) or REPO.parent / 'shared' / 'data')


def cifar10_jpg_archive() -> Path:
    """The CIFAR-10 training JPEGs as a ``.tar.gz`` (``train/<class>/``)."""
    return data_root() / 'cifar10' / 'cifar10-jpg-train.tar.gz'


def mpii_sample() -> Path:
    """A few real MPII images with annotations (``test_mpii.json``)."""
    return data_root() / 'mpii_sample'


def cifar10_pickles() -> Path:
    """The official CIFAR-10 python batches, ``cifar-10-batches-py/``, beside
    the JPEG archive (this folder is torchvision's ``CIFAR10`` root)."""
    return data_root() / 'cifar10' / 'cifar-10-batches-py'


def cifar10_jpg_train(per_class=None, holdout_per_class=None) -> Path:
    """Extract the CIFAR-10 JPEGs once into the git-ignored ``data/`` folder
    and return the ``train`` image folder; a held-out ``val`` beside it
    (``holdout_per_class`` per class, default 500) makes its parent an
    ``--image-folder`` (``per_class``: first N of each class only)."""
    from tasks.classification.data_prep import (
        HOLDOUT_PER_CLASS,
        extract_cifar10_jpg,
    )

    return extract_cifar10_jpg(
        REPO / 'data' / 'cifar10-jpg',
        cifar10_jpg_archive(),
        per_class,
        HOLDOUT_PER_CLASS if holdout_per_class is None else holdout_per_class,
    )

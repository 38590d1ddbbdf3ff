"""What the benchmarks share: the repository on ``sys.path`` (they run as
``python benchmarks/NAME.py`` from any checkout, installed or not), the CIFAR
normalisation, and the real CIFAR-10 images (``tools/data_root.py``).

Every benchmark imports this module before anything from the repository.
"""

import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tasks.classification.transforms import CIFAR_MEAN, CIFAR_STD  # noqa: E402
from tools.data_root import (  # noqa: E402
    ENV_VAR,
    cifar10_jpg_archive,
    cifar10_jpg_train,
)

__all__ = ['REPO', 'CIFAR_MEAN', 'CIFAR_STD', 'cifar10_folder', 'normalize']


def normalize(x: torch.Tensor) -> torch.Tensor:
    """A 0-255 NCHW batch normalised with the CIFAR-10 mean and std."""
    mean = torch.tensor(CIFAR_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() - mean) / std


def cifar10_folder(per_class=None) -> Path:
    """The real CIFAR-10 training JPEGs as an image folder (extracted once
    into data/); exits with a message when the archive is absent."""
    archive = cifar10_jpg_archive()
    if not archive.is_file():
        raise SystemExit(
            f'CIFAR-10 archive not found: {archive} (set {ENV_VAR} to the '
            'folder holding cifar10/cifar10-jpg-train.tar.gz, or pass '
            '--data-root where the benchmark has it)'
        )
    return cifar10_jpg_train(per_class)

"""The fixed data split of a study, cached as CIFAR pickle batches."""

from __future__ import annotations

import json
from pathlib import Path

from common import REPO, cifar10_jpg_archive


def _noise_list_ok(root: Path) -> bool:
    """A cache's flip list in the current format (older code wrote a bare
    list of indices; such a cache is rebuilt)."""
    try:
        noisy = json.loads((root / 'noisy_indices.json').read_text())
        return len(noisy['indices']) == len(noisy['clean_labels'])
    except (OSError, ValueError, TypeError, KeyError):
        return False


def prepare_data(
    train_per_class, holdout_per_class, label_noise=0.0, cache_root=None
) -> Path:
    """CIFAR pickle batches of a fixed split of the shared JPEGs, made once
    in a git-ignored cache: training images in the train batches, the
    held-out images in ``test_batch``. ``label_noise`` flips that fraction of
    the training labels (seed 0, the same in every cell; the held-out labels
    stay clean) and lists the flipped indices and their true labels in
    ``noisy_indices.json``.
    Returns the folder for data_root."""
    from tasks.classification.data_prep import (
        CIFAR10_CLASSES,
        cifar10_jpg_split,
        symmetric_label_noise,
        write_cifar_pickles,
    )

    train = 'all' if train_per_class is None else train_per_class
    noise = f'_noise{100 * label_noise:g}' if label_noise else ''
    root = Path(cache_root or REPO / 'data' / 'study') / (
        f'cifar10-jpg_train{train}pc_holdout{holdout_per_class}pc{noise}_seed0'
    )
    marker = root / '.complete'
    if not marker.is_file() or (label_noise and not _noise_list_ok(root)):
        archive = cifar10_jpg_archive()
        if not archive.is_file():
            raise SystemExit(
                f'CIFAR-10 archive not found: {archive} (set '
                'AUSAM_DATA_ROOT to the folder holding '
                'cifar10/cifar10-jpg-train.tar.gz)'
            )
        xtr, ytr, xho, yho = cifar10_jpg_split(
            archive, train_per_class, holdout_per_class, seed=0
        )
        import shutil

        shutil.rmtree(root, ignore_errors=True)  # an interrupted attempt
        if label_noise:
            clean_labels = ytr
            ytr, flipped = symmetric_label_noise(
                ytr, label_noise, len(CIFAR10_CLASSES), seed=0
            )
            root.mkdir(parents=True)
            (root / 'noisy_indices.json').write_text(
                json.dumps(
                    dict(
                        indices=[int(i) for i in flipped],
                        clean_labels=[int(clean_labels[i]) for i in flipped],
                    )
                )
            )
        write_cifar_pickles(
            root,
            xtr,
            ytr,
            test_images=xho,
            test_labels=yho,
            classes=list(CIFAR10_CLASSES),
        )
        marker.touch()
    return root

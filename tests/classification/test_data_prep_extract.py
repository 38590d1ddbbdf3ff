"""extract_cifar10_jpg: train/ plus a held-out val/, usable as
``tools/train.py --image-folder``."""

import io
import tarfile
from pathlib import Path

import cv2
import pytest

from ausam_tasks.tools import train as train_tool
from tasks.classification.data_prep import (
    extract_cifar10_jpg,
    synthetic_images,
)

CLASSES = ('ant', 'bee', 'cat')
PER_CLASS = 8
CONFIG = str(
    Path(__file__).resolve().parents[2]
    / 'configs/classification/resnet18_sgd_1xb128_cifar10.py'
)


@pytest.fixture(scope='module')
def archive(tmp_path_factory):
    """A tiny archive in the real one's layout: train/<class>/NNNN.jpg, the
    files of a class in name order."""
    path = tmp_path_factory.mktemp('archive') / 'tiny.tar.gz'
    imgs, _ = synthetic_images(len(CLASSES) * PER_CLASS, 3, seed=5)
    with tarfile.open(path, 'w:gz') as tar:
        for i, img in enumerate(imgs):
            name = f'train/{CLASSES[i % 3]}/{i // 3:04d}.jpg'
            blob = cv2.imencode('.jpg', img)[1].tobytes()
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def files(folder: Path) -> dict:
    return {
        d.name: sorted(f.name for f in d.iterdir())
        for d in sorted(folder.iterdir())
    }


def test_writes_a_disjoint_class_balanced_val_beside_train(archive, tmp_path):
    train = extract_cifar10_jpg(tmp_path / 'c', archive, holdout_per_class=2)
    assert train == tmp_path / 'c' / 'train'
    tr, va = files(train), files(train.parent / 'val')
    assert list(tr) == list(va) == list(CLASSES)
    for c in CLASSES:
        assert len(tr[c]) == PER_CLASS - 2 and len(va[c]) == 2
        assert not set(tr[c]) & set(va[c])
    # Seeded: the same split again, another one with another seed.
    again = extract_cifar10_jpg(tmp_path / 'd', archive, holdout_per_class=2)
    assert files(again.parent / 'val') == va
    other = extract_cifar10_jpg(
        tmp_path / 'e', archive, holdout_per_class=2, seed=1
    )
    assert files(other.parent / 'val') != va


def test_per_class_keeps_the_first_files_for_train(archive, tmp_path):
    train = extract_cifar10_jpg(
        tmp_path / 'c', archive, per_class=3, holdout_per_class=2
    )
    assert train == tmp_path / 'c-3pc' / 'train'
    first = ['0000.jpg', '0001.jpg', '0002.jpg']
    assert files(train) == {c: first for c in CLASSES}
    for names in files(train.parent / 'val').values():
        assert len(names) == 2 and not set(names) & set(first)
    # Cached; a different holdout starts over.
    marker = train.parent / '.complete'
    stamp = marker.stat().st_mtime_ns
    extract_cifar10_jpg(
        tmp_path / 'c', archive, per_class=3, holdout_per_class=2
    )
    assert marker.stat().st_mtime_ns == stamp
    extract_cifar10_jpg(
        tmp_path / 'c', archive, per_class=3, holdout_per_class=0
    )
    assert not (train.parent / 'val').exists()
    assert files(train) == {c: first for c in CLASSES}
    with pytest.raises(ValueError, match='fewer than 6 training'):
        extract_cifar10_jpg(
            tmp_path / 'f', archive, per_class=6, holdout_per_class=3
        )


def test_the_extracted_folder_trains_with_image_folder(archive, tmp_path):
    train = extract_cifar10_jpg(tmp_path / 'c', archive, holdout_per_class=2)
    runner = train_tool.main(
        [
            CONFIG,
            '--image-folder',
            str(train.parent),
            '--work-dir',
            str(tmp_path / 'w'),
            '--cfg-options',
            'train_cfg.max_epochs=1',
            'train_dataloader.batch_size=18',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False',
        ]
    )
    assert len(runner.train_dataloader.dataset) == 18
    assert len(runner.val_dataloader.dataset) == 6
    assert runner.train_dataloader.dataset.metainfo['classes'] == CLASSES
    assert runner.iter == 1

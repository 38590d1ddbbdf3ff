"""tools/demo.py: where its data comes from (data root given > CIFAR-10
pickles > JPEG archive > download > generated stand-in), the stand-in's label
noise, and one tiny end-to-end run. Downloads are simulated."""

import argparse
import io
import json
import shutil
import tarfile
import urllib.error
from pathlib import Path

import cv2
import numpy as np
import pytest
import torchvision

from tasks.classification.data_prep import (
    CIFAR10_CLASSES,
    synthetic_images,
    write_cifar_pickles,
    write_image_folder,
)
from tools import demo

T, V = 4, 2  # training and held-out images per class


def tiny_cifar(seed: int):
    """Six images of each CIFAR-10 class, in a shuffled order."""
    imgs, _ = synthetic_images(60, 10, seed=seed)
    labels = np.random.default_rng(seed).permutation(np.repeat(range(10), 6))
    return imgs, labels


def write_archive(path: Path):
    imgs, labels = tiny_cifar(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, 'w:gz') as tar:
        for i, (img, lab) in enumerate(zip(imgs, labels)):
            blob = cv2.imencode('.jpg', img)[1].tobytes()
            info = tarfile.TarInfo(f'train/{CIFAR10_CLASSES[lab]}/{i:04d}.jpg')
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An empty data root, data/ in tmp_path, and a download that raises
    URLError (as offline) unless a test replaces ``env.download``."""
    shared = tmp_path / 'shared'
    monkeypatch.setenv('AUSAM_DATA_ROOT', str(shared))
    monkeypatch.setattr(demo, 'DATA', tmp_path / 'data')
    state = argparse.Namespace(shared=shared, calls=[], download=None)

    def offline(root, train=True, download=False):
        raise urllib.error.URLError('[Errno -2] Name or service not known')

    def fake_cifar10(root, train=True, download=False):
        state.calls.append((root, download))
        return (state.download or offline)(root, train, download)

    monkeypatch.setattr(torchvision.datasets, 'CIFAR10', fake_cifar10)
    return state


def args(**kw):
    return argparse.Namespace(
        data_root=kw.get('data_root'), train_per_class=T, val_per_class=V
    )


def counts(root: Path) -> dict:
    return {
        part: sorted(len(list(d.iterdir())) for d in (root / part).iterdir())
        for part in ('train', 'val')
    }


def test_sources_in_order(env, tmp_path, capsys):
    def download(root, train, download):  # torchvision's, simulated
        write_cifar_pickles(
            root, *tiny_cifar(3), classes=list(CIFAR10_CLASSES)
        )

    env.download = download
    write_cifar_pickles(
        env.shared / 'cifar10', *tiny_cifar(2), classes=list(CIFAR10_CLASSES)
    )
    write_archive(env.shared / 'cifar10' / 'cifar10-jpg-train.tar.gz')
    mine = tmp_path / 'mine'
    found = []
    for drop in (
        None,
        mine,
        env.shared / 'cifar10' / 'cifar-10-batches-py',
        env.shared / 'cifar10' / 'cifar10-jpg-train.tar.gz',
    ):
        if drop is not None:
            shutil.rmtree(drop) if drop.is_dir() else drop.unlink()
        elif not mine.exists():
            mine.mkdir()
        root, source, _ = demo.find_data(
            args(data_root=str(mine) if mine.exists() else None)
        )
        found.append(source)
        if source != 'data-root':
            assert counts(root) == {'train': [T] * 10, 'val': [V] * 10}
            assert sorted(p.name for p in (root / 'val').iterdir()) == sorted(
                CIFAR10_CLASSES
            )
    assert found == [
        'data-root',
        'cifar10-pickles',
        'cifar10-jpg',
        'cifar10-download',
    ]
    assert env.calls == [(str(tmp_path / 'data' / 'cifar10'), True)]
    env.download = None  # offline now, and the downloaded copy gone
    shutil.rmtree(tmp_path / 'data' / 'cifar10')
    assert demo.find_data(args())[1] == 'generated'


def test_failed_download_falls_back_to_the_generated_stand_in(env, capsys):
    root, source, what = demo.find_data(args())
    out = capsys.readouterr().out
    assert source == 'generated' and 'label noise' in what
    assert out.splitlines()[0] == (
        'CIFAR-10 download failed (URLError: <urlopen error [Errno -2] Name '
        'or service not known>)'
    )
    assert 'GENERATED STAND-IN, not CIFAR-10' in out
    assert '30% of the training labels flipped' in out
    assert '$AUSAM_DATA_ROOT' in out and 'network access' in out
    # Noisy labels move training images between class folders.
    assert sum(counts(root)['train']) == 10 * T
    assert counts(root)['val'] == [V] * 10


def test_stand_in_training_labels_are_noisy_at_the_stated_rate(env):
    t, v = 20, 5
    root = demo.generated(
        argparse.Namespace(train_per_class=t, val_per_class=v)
    )
    # The generator is seeded: its clean label of every image written.
    imgs, labels = demo.standin_images(t + v)
    clean = {img.tobytes(): int(lab) for img, lab in zip(imgs, labels)}
    wrong = {}
    for part in ('train', 'val'):
        files = sorted((root / part).glob('*/*.png'))
        assert len(files) == 10 * (t if part == 'train' else v)
        wrong[part] = sum(
            clean[cv2.imread(str(f))[:, :, ::-1].tobytes()]
            != int(f.parent.name[-2:])
            for f in files
        )
    assert wrong == {'train': round(demo.LABEL_NOISE * 10 * t), 'val': 0}


def test_dataset_parts_of_both_image_folder_layouts(tmp_path):
    imgs, labels = synthetic_images(12, 2, seed=0)
    write_image_folder(tmp_path / 'flat', imgs, labels)
    parts = demo.dataset_parts(tmp_path / 'flat', args())
    assert parts['holdout'] == dict(
        data_root=str(tmp_path / 'flat'),
        part='holdout',
        holdout_per_class=V,
        train_per_class=T,
    )
    write_image_folder(tmp_path / 'split' / 'train', imgs, labels)
    write_image_folder(tmp_path / 'split' / 'val', imgs, labels)
    parts = demo.dataset_parts(tmp_path / 'split', args())
    assert parts['holdout'] == dict(
        data_root=str(tmp_path / 'split' / 'val'), part='all'
    )


def test_tiny_run_writes_a_summary_naming_the_source(env, tmp_path):
    work = tmp_path / 'w'
    demo.main(
        [
            '--work-dir',
            str(work),
            '--epochs',
            '1',
            '--train-per-class',
            str(T),
            '--val-per-class',
            str(V),
            '--methods',
            'SGD',
            'AUSAM-0.5',
            '--threads',
            '1',
        ]
    )
    summary = json.loads((work / 'summary.json').read_text())
    assert summary['data']['source'] == 'generated'
    assert summary['data']['label_noise'] == demo.LABEL_NOISE
    assert list(summary['results']) == ['SGD', 'AUSAM-0.5']
    for r in summary['results'].values():
        assert 0 <= r['accuracy'] <= 100 and len(r['curve']) == 1
    assert (work / 'curves.png').is_file()

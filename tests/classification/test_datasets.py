"""The three dataset layouts, sample_idx, the shared CIFAR-10 JPEGs, and errors
that name the file."""

import os
import shutil

import pytest
import torch

import tasks.classification  # noqa: F401
from tasks.classification.data_prep import (
    extract_cifar10_jpg,
    synthetic_images,
)
from tasks.classification.datasets import CIFAR10, ImageFolder, TinyImageNet
from tasks.classification.registry import DATASETS

PIPE = [dict(type='LoadClsImage'), dict(type='PackClsInputs')]


def test_cifar10_pickles_round_trip(cifar10_root):
    imgs, labels = synthetic_images(28, 10, seed=1)
    train = CIFAR10(str(cifar10_root), split='train', pipeline=PIPE)
    test = CIFAR10(
        str(cifar10_root / 'cifar-10-batches-py'), split='test', pipeline=PIPE
    )
    assert len(train) == 20 and len(test) == 8
    assert train.metainfo['classes'] == tuple(f'c{i}' for i in range(10))
    for i in (0, 7, 19):
        item = train[i]
        assert item['inputs'].dtype == torch.uint8 and item[
            'inputs'
        ].shape == (3, 32, 32)
        # Pixels and labels come back exactly as written (HWC -> CHW).
        assert torch.equal(
            item['inputs'], torch.from_numpy(imgs[i]).permute(2, 0, 1)
        )
        assert int(item['data_samples'].gt_label) == labels[i]
        assert item['data_samples'].sample_idx == i
    assert int(test[3]['data_samples'].gt_label) == labels[23]


def test_cifar100_fine_labels(cifar100_root):
    ds = DATASETS.build(
        dict(
            type='CIFAR100',
            data_root=str(cifar100_root),
            split='train',
            pipeline=PIPE,
        )
    )
    assert len(ds) == 8 and int(ds[0]['data_samples'].gt_label) == 99
    assert len(ds.metainfo['classes']) == 100


def test_cifar_subset_keeps_consecutive_sample_idx(cifar10_root):
    ds = CIFAR10(
        str(cifar10_root), split='train', pipeline=PIPE, indices=[5, 2, 11]
    )
    full = CIFAR10(str(cifar10_root), split='train', pipeline=PIPE)
    assert [ds[i]['data_samples'].sample_idx for i in range(3)] == [0, 1, 2]
    assert torch.equal(ds[1]['inputs'], full[2]['inputs'])


def test_image_folder(image_folder_root):
    ds = ImageFolder(str(image_folder_root), pipeline=PIPE)
    assert len(ds) == 18 and ds.metainfo['classes'] == ('ant', 'bee', 'cat')
    labels = [int(ds[i]['data_samples'].gt_label) for i in range(18)]
    assert labels == sorted(labels) and set(labels) == {0, 1, 2}
    item = ds[4]
    assert (
        item['inputs'].shape == (3, 32, 32)
        and item['data_samples'].sample_idx == 4
    )
    assert item['data_samples'].img_path.endswith('.jpg')


def test_image_folder_holdout_split_is_disjoint_balanced_and_seeded(
    image_folder_root,
):
    kw = dict(
        data_root=str(image_folder_root), holdout_per_class=2, pipeline=PIPE
    )
    hold = ImageFolder(part='holdout', **kw)
    train = ImageFolder(part='train', train_per_class=3, **kw)

    def paths(d):
        return [d.get_data_info(i)['img_path'] for i in range(len(d))]

    assert len(hold) == 6 and len(train) == 9
    assert not set(paths(hold)) & set(paths(train))
    assert paths(hold) == paths(ImageFolder(part='holdout', **kw))
    assert paths(hold) != paths(
        ImageFolder(part='holdout', split_seed=1, **kw)
    )


def test_tiny_imagenet_released_layout(tiny_imagenet_root):
    train = TinyImageNet(str(tiny_imagenet_root), split='train', pipeline=PIPE)
    val = TinyImageNet(str(tiny_imagenet_root), split='val', pipeline=PIPE)
    assert len(train) == 12 and len(val) == 6
    assert [
        int(train[i]['data_samples'].gt_label) for i in range(0, 12, 4)
    ] == [0, 1, 2]
    assert [int(val[i]['data_samples'].gt_label) for i in range(6)] == [
        0,
        1,
        2,
        0,
        1,
        2,
    ]
    gray = train[0]['inputs']  # a grayscale JPEG still gives three channels
    assert gray.shape == (3, 64, 64) and torch.equal(gray[0], gray[1])


def test_corrupt_and_missing_images_name_the_file(image_folder_root, tmp_path):
    root = tmp_path / 'folder'
    shutil.copytree(image_folder_root, root)
    ds = ImageFolder(str(root), pipeline=PIPE)
    bad = ds.get_data_info(3)['img_path']
    with open(bad, 'wb') as f:
        f.write(b'\xff\xd8 not really a jpeg')
    with pytest.raises(ValueError, match=rf'{bad}.*corrupt'):
        ds[3]
    gone = ds.get_data_info(5)['img_path']
    os.remove(gone)
    with pytest.raises(FileNotFoundError, match=gone):
        ds[5]


def test_missing_cifar_batch_and_tiny_annotations_name_the_file(
    tmp_path, tiny_imagenet_root
):
    with pytest.raises(FileNotFoundError, match='data_batch_1'):
        CIFAR10(str(tmp_path), split='train')
    root = tmp_path / 'tiny'
    shutil.copytree(tiny_imagenet_root, root)
    (root / 'val' / 'val_annotations.txt').unlink()
    with pytest.raises(FileNotFoundError, match='val_annotations.txt'):
        TinyImageNet(str(root), split='val')
    with pytest.raises(ValueError, match='split'):
        TinyImageNet(str(root), split='test')


def test_reads_the_extracted_shared_cifar10_jpegs(tmp_path, cifar10_archive):
    train_dir = extract_cifar10_jpg(
        tmp_path / 'cache', cifar10_archive, per_class=3
    )
    ds = ImageFolder(str(train_dir), pipeline=PIPE)
    assert ds.metainfo['classes'] == (
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
    assert len(ds) == 30
    item = ds[29]
    assert (
        item['inputs'].shape == (3, 32, 32)
        and int(item['data_samples'].gt_label) == 9
    )
    assert item['inputs'].float().std() > 10  # real pixels, not blank
    assert (
        extract_cifar10_jpg(tmp_path / 'cache', cifar10_archive, per_class=3)
        == train_dir
    )  # cached


def test_download_fetches_the_official_archive_into_data_root(
    tmp_path, monkeypatch, cifar10_root
):
    import torchvision.datasets.utils as tv_utils

    calls = []

    def fake_download(
        url, download_root, md5=None, **kw
    ):  # no network in tests: copy the fixture
        calls.append((url, download_root, md5))
        shutil.copytree(
            cifar10_root / 'cifar-10-batches-py',
            tmp_path / 'cifar-10-batches-py',
        )

    monkeypatch.setattr(
        tv_utils, 'download_and_extract_archive', fake_download
    )
    ds = CIFAR10(str(tmp_path), split='train', download=True, pipeline=PIPE)
    assert len(ds) == 20
    assert calls == [
        (
            'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz',
            str(tmp_path),
            'c58f30108f718f92721af3b95e74349a',
        )
    ]
    CIFAR10(
        str(tmp_path), split='test', download=True
    )  # already there: no second download
    assert len(calls) == 1

"""The batch (on-device) and CPU (albumentations) augmentation paths: exact
geometry of each operation, and agreement in distribution between the two
paths."""

import numpy as np
import pytest
import torch
from scipy import stats

import tasks.classification  # noqa: F401
from tasks.classification import augment
from tasks.classification.data_preprocessor import ClsDataPreprocessor
from tasks.classification.transforms import (
    CIFAR_MEAN,
    CIFAR_STD,
    AlbuClsAugment,
)

N = 3000


def column_image():
    """32x32 image whose value encodes the column (100 + 4x), constant along
    rows."""
    col = (100 + 4 * np.arange(32)).astype(np.uint8)
    return np.repeat(np.repeat(col[None, :, None], 32, 0), 3, 2)


def batch_path(img, n, seed, **aug):
    torch.manual_seed(seed)
    pre = ClsDataPreprocessor(CIFAR_MEAN, CIFAR_STD, batch_augment=aug)
    x = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    return pre(dict(inputs=[x] * n, data_samples=None), training=True)[
        'inputs'
    ].numpy()


def cpu_path(img, n, seed, padding=4, flip_prob=0.5, cutout_size=16):
    torch.manual_seed(
        seed
    )  # AlbuClsAugment seeds its albumentations stream from torch
    t = AlbuClsAugment(
        True, padding, flip_prob, cutout_size, CIFAR_MEAN, CIFAR_STD
    )
    return np.stack(
        [t.transform({'img': img})['img'].transpose(2, 0, 1) for _ in range(n)]
    )


def pad_value():
    return (0 - np.array(CIFAR_MEAN)) / np.array(CIFAR_STD)


def crop_offsets_and_flips(out):
    """Recover each output's crop offset (oy, ox) in [0, 8]^2 and flip flag."""
    ch0 = out[:, 0]
    is_pad = np.isclose(ch0, pad_value()[0], atol=1e-4)
    oy, ox, flips = [], [], []
    for p, img in zip(is_pad, ch0):
        pad_rows = p.all(1)
        top = np.argmax(~pad_rows)  # leading pad rows
        bottom = np.argmax(~pad_rows[::-1])
        oy.append(4 - top if top else 4 + bottom)
        row = img[top]  # first image row
        vals = np.where(
            p[top], np.nan, np.round(row * CIFAR_STD[0] + CIFAR_MEAN[0])
        )
        cols = (vals - 100) / 4  # source column of each output pixel
        good = np.flatnonzero(~np.isnan(cols))
        flipped = cols[good[-1]] < cols[good[0]]
        # Source column of output x is x + ox - 4 (unflipped); flipping mirrors
        # the crop.
        shift = cols[good[0]] - good[0] + 4
        ox.append(
            int(round(shift))
            if not flipped
            else int(round(31 - cols[good[0]] - good[0] + 4))
        )
        flips.append(flipped)
    return np.array(oy), np.array(ox), np.array(flips)


def test_random_crop_matches_a_slice_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    torch.manual_seed(1)
    out = augment.random_crop(x, 2)
    torch.manual_seed(1)
    oy = torch.randint(0, 5, (64,))
    ox = torch.randint(0, 5, (64,))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(64):
        assert torch.equal(
            out[i], padded[i, :, oy[i] : oy[i] + 8, ox[i] : ox[i] + 8]
        )
    assert out.dtype == torch.uint8


def test_cutout_square_geometry_and_clipping():
    m = augment.cutout_masks(2000, 32, 32, 16)
    area = m.sum((1, 2))
    assert (
        area.max() == 256 and area.min() == 8 * 8
    )  # centre at (0, 0): rows and columns [-8, 8)
    # Every mask is one axis-aligned rectangle.
    rows, cols = m.any(2), m.any(1)
    assert torch.equal(area, rows.sum(1) * cols.sum(1))


def test_crop_and_flip_agree_in_distribution():
    img = column_image()
    b = crop_offsets_and_flips(
        batch_path(img, N, 0, padding=4, flip_prob=0.5, cutout_size=0)
    )
    c = crop_offsets_and_flips(cpu_path(img, N, 0, cutout_size=0))
    for path in (b, c):
        oy, ox, flips = path
        assert (
            oy.min() == 0 and oy.max() == 8 and ox.min() == 0 and ox.max() == 8
        )
        # Each of the 81 offsets uniform (chi-square goodness of fit).
        counts = np.bincount(oy * 9 + ox, minlength=81)
        assert stats.chisquare(counts).pvalue > 1e-4
        assert abs(flips.mean() - 0.5) < 4 * np.sqrt(0.25 / N)
    # The two paths against each other: offsets (contingency table) and flip
    # rates.
    table = np.stack(
        [np.bincount(p[0] * 9 + p[1], minlength=81) for p in (b, c)]
    )
    assert stats.chi2_contingency(table).pvalue > 1e-4
    assert abs(b[2].mean() - c[2].mean()) < 4 * np.sqrt(0.5 / N)


def expected_cut_probability(size=32, cut=16):
    """P(pixel is cut) for a centre uniform on the grid and the square [c - 8,
    c + 8)."""
    p = (
        np.array(
            [
                min(size - 1, y + cut // 2) - max(0, y - cut // 2 + 1) + 1
                for y in range(size)
            ]
        )
        / size
    )
    return np.outer(p, p)


def test_cutout_agrees_in_distribution_and_with_the_analytic_coverage():
    img = np.full((32, 32, 3), 200, np.uint8)
    outs = [
        batch_path(img, N, 1, padding=0, flip_prob=0.0, cutout_size=16),
        cpu_path(img, N, 1, padding=0, flip_prob=0.0, cutout_size=16),
    ]
    masks = [
        (o == 0).all(1) for o in outs
    ]  # cut pixels are exactly 0 after normalisation
    want = expected_cut_probability()
    for m in masks:
        freq = m.mean(0)
        se = np.sqrt(want * (1 - want) / N)
        assert np.abs(freq - want).max() < 5 * se.max()
        rows, cols = m.any(2), m.any(1)
        assert (
            m.sum((1, 2)) == rows.sum(1) * cols.sum(1)
        ).all()  # one rectangle each
    # Cut areas: same distribution in both paths.
    areas = [m.sum((1, 2)) for m in masks]
    assert stats.ks_2samp(*areas).pvalue > 1e-4
    assert abs(areas[0].mean() - areas[1].mean()) < 6.0


def test_full_pipelines_give_the_same_pixel_means_and_variances():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = batch_path(img, N, 2, padding=4, flip_prob=0.5, cutout_size=16)[:, 0]
    c = cpu_path(img, N, 2)[:, 0]
    assert b.shape == c.shape == (N, 32, 32)
    z = (b.mean(0) - c.mean(0)) / np.sqrt(b.var(0) / N + c.var(0) / N + 1e-12)
    assert (
        np.abs(z).max() < 5.0
    )  # 1024 two-sample z-tests; |z| > 5 has p < 1e-6 each
    assert np.abs(np.log(b.var(0) / c.var(0))).max() < 0.35


def test_no_augmentation_at_eval_and_paths_normalise_identically():
    img = column_image()
    x = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    pre = ClsDataPreprocessor(
        CIFAR_MEAN, CIFAR_STD, batch_augment=dict(padding=4, cutout_size=16)
    )
    ev = pre(dict(inputs=[x, x], data_samples=None), training=False)[
        'inputs'
    ].numpy()
    cpu = AlbuClsAugment(False, mean=CIFAR_MEAN, std=CIFAR_STD).transform(
        {'img': img}
    )['img']
    np.testing.assert_allclose(ev[0], cpu.transpose(2, 0, 1), atol=1e-5)
    np.testing.assert_allclose(
        ev[0, 0, 0], (img[0, :, 0] - CIFAR_MEAN[0]) / CIFAR_STD[0], atol=1e-5
    )


def test_preprocessor_rejects_mismatched_paths():
    pre = ClsDataPreprocessor(CIFAR_MEAN, CIFAR_STD)
    with pytest.raises(TypeError, match='mean=None'):
        pre(dict(inputs=[torch.zeros(3, 4, 4)], data_samples=None))
    with pytest.raises(ValueError, match='batch_augment'):
        ClsDataPreprocessor(CIFAR_MEAN, CIFAR_STD, batch_augment=dict(pad=4))
    with pytest.raises(TypeError, match='mean/std'):
        ClsDataPreprocessor()(
            dict(
                inputs=[torch.zeros(3, 4, 4, dtype=torch.uint8)],
                data_samples=None,
            )
        )

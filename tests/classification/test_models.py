"""Architectures: parameter counts against the published numbers, output
shapes."""

import pytest
import torch

import tasks.classification  # noqa: F401
from tasks.classification.models import (
    PyramidNet,
    WideResNet,
    cifar_resnet,
    mobilenet_v1,
    pyramidnet110,
    resnet18,
    resnet50,
    wide_resnet28_10,
)
from tasks.classification.registry import MODELS


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_resnet18_cifar_stem_exact_count():
    # torchvision's resnet18 (11,689,512) with a 3x3 stem (-9,408 +1,728) and a
    # 10-way head.
    assert n_params(resnet18(10)) == 11_173_962


@pytest.mark.parametrize(
    'build, published, exact',
    [
        (
            lambda: resnet50(1000, stem='imagenet'),
            25.6e6,
            25_557_032,
        ),  # torchvision resnet50
        (
            lambda: resnet50(1000),
            25.6e6,
            25_549_352,
        ),  # 3x3 stem: -7x7 +3x3 conv
        (lambda: wide_resnet28_10(10), 36.5e6, 36_479_194),
        (
            lambda: pyramidnet110(100, alpha=270),
            28.3e6,
            28_511_307,
        ),  # pytorchcv counts 28,511,307
        (lambda: mobilenet_v1(1000), 4.2e6, 4_231_976),
        (
            lambda: cifar_resnet(20, 16, 10),
            0.27e6,
            272_474,
        ),  # He et al.'s ResNet-20
    ],
)
def test_published_parameter_counts(build, published, exact):
    n = n_params(build())
    assert n == exact
    assert abs(n - published) / published < 0.01


@pytest.mark.parametrize(
    'build, size, classes',
    [
        (lambda: resnet18(10), 32, 10),
        (lambda: resnet18(200), 64, 200),
        (lambda: resnet50(200), 16, 200),
        (lambda: wide_resnet28_10(100), 16, 100),
        (lambda: pyramidnet110(100), 16, 100),
        (lambda: mobilenet_v1(200), 64, 200),
        (lambda: cifar_resnet(20, 8, 10), 32, 10),
    ],
)
def test_output_shapes(build, size, classes):
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


def test_cifar_stem_keeps_resolution_and_imagenet_stem_quarters_it():
    x = torch.randn(1, 3, 64, 64)
    assert resnet18(10).stem(x).shape[-1] == 64
    assert resnet18(10, stem='imagenet').stem(x).shape[-1] == 16


def test_registered_constructors_build_from_config():
    for name in (
        'resnet18',
        'resnet50',
        'wide_resnet28_10',
        'pyramidnet110',
        'mobilenet_v1',
        'cifar_resnet',
    ):
        assert MODELS.get(name) is not None, name
    net = MODELS.build(
        dict(type='cifar_resnet', depth=8, width=4, num_classes=3)
    )
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize(
    'build, match',
    [
        (lambda: resnet18(10, stem='big'), 'stem'),
        (lambda: cifar_resnet(21), 'depth'),
        (lambda: PyramidNet(depth=100), 'depth'),
        (lambda: WideResNet(depth=27), 'depth'),
    ],
)
def test_bad_architecture_settings_name_the_setting(build, match):
    with pytest.raises(ValueError, match=match):
        build()

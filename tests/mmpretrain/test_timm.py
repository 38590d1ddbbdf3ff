"""SAMTimmClassifier (a timm model through mmpretrain's TimmClassifier)
against the stock TimmClassifier (``make venv`` installs timm; without it
these tests skip)."""

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

import ausam_tasks.mmpretrain  # noqa: F401  (registers the variants)

from .test_adapter import assert_same_sgd_step, raw_batch, wrapper

pytest.importorskip('timm')


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def build(kind):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type=kind,
            model_name='resnet10t',
            pretrained=False,
            num_classes=4,
            loss=dict(type='CrossEntropyLoss'),
            data_preprocessor=dict(
                num_classes=4, mean=[128.0] * 3, std=[64.0] * 3
            ),
        )
    )


def test_state_dict_and_sgd_step_are_the_stock_models():
    ours, stock = build('SAMTimmClassifier'), build('TimmClassifier')
    assert list(ours.state_dict()) == list(stock.state_dict())
    assert_same_sgd_step(ours, stock)


def test_ausam_scores_every_sample_of_the_batch():
    model = build('SAMTimmClassifier')
    ow = wrapper(model, 'AUSAMOptimWrapper', alpha=0.5, init_epochs=1)
    logs = model.train_step(raw_batch(n=8), ow)
    assert float(logs['sam_frac']) == 1.0  # the scoring epoch: all of them
    scores = ow.sample_scores(torch.arange(8))
    assert torch.isfinite(scores).all() and (scores > 0).all()

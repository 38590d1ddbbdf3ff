"""SAMImageClassifier against the stock model and the project's own
classifier; what it refuses, and how."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import MODELS
from torch import nn

import ausam_tasks.mmpretrain  # noqa: F401  (registers the variants)
from ausam_tasks.mmpretrain import PerSampleLossError
from tasks.classification import ClsDataSample, ImageClassifier

MEAN = [125.307, 122.961, 113.8575]  # the stock CIFAR config's
STD = [51.5865, 50.847, 51.255]


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    """Build in mmpretrain's scope, as a stock config's default_scope
    does (an earlier Runner may have left another scope current)."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def model_cfg(kind='SAMImageClassifier', **head):
    return dict(
        type=kind,
        backbone=dict(type='ResNet_CIFAR', depth=18, out_indices=(3,)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            dict(
                type='LinearClsHead',
                num_classes=4,
                in_channels=512,
                loss=dict(type='CrossEntropyLoss'),
            ),
            **head,
        ),
        data_preprocessor=dict(num_classes=4, mean=MEAN, std=STD),
    )


def build(kind='SAMImageClassifier', **head):
    torch.manual_seed(0)
    return MODELS.build(model_cfg(kind, **head))


def raw_batch(n=8, seed=0, meta_keys=PackInputs.DEFAULT_META_KEYS):
    """A batch as mmpretrain's pipeline and collate make it."""
    rng = np.random.default_rng(seed)
    pack = PackInputs(meta_keys=meta_keys)
    packed = [
        pack(
            dict(
                img=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                gt_label=i % 4,
                sample_idx=seed * n + i,
                img_shape=(32, 32),
            )
        )
        for i in range(n)
    ]
    return dict(
        inputs=torch.stack([p['inputs'] for p in packed]),
        data_samples=[p['data_samples'] for p in packed],
    )


def wrapper(model, kind, **settings):
    return build_optim_wrapper(
        model,
        dict(
            type=kind,
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
            **settings,
        ),
    )


def assert_same_sgd_step(ours, stock):
    """One SGD step of ``ours`` equals the stock model's, from the same
    weights: the loss and every parameter after it."""
    stock.load_state_dict(ours.state_dict())
    a = ours.train_step(raw_batch(), wrapper(ours, 'OptimWrapper'))
    b = stock.train_step(raw_batch(), wrapper(stock, 'OptimWrapper'))
    torch.testing.assert_close(a['loss'], b['loss'])
    for (k, p), q in zip(ours.named_parameters(), stock.parameters()):
        torch.testing.assert_close(p, q, msg=k)


def test_sgd_step_matches_the_stock_model():
    assert_same_sgd_step(build(), build('ImageClassifier'))


class StockLogits(nn.Module):
    """The mmpretrain network as the project's ``net`` (images ->
    logits)."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x, mode='tensor')


def project_classifier(net):
    return ImageClassifier(
        net=StockLogits(net),
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=MEAN, std=STD),
    )


def project_batch(batch):
    samples = []
    for s in batch['data_samples']:
        d = ClsDataSample(metainfo=dict(sample_idx=s.sample_idx))
        d.gt_label = int(s.gt_label)
        samples.append(d)
    return dict(inputs=list(batch['inputs']), data_samples=samples)


def test_score_table_matches_the_project_classifier():
    """Same weights, same batches, same AUSAM settings: the stock model
    through the adapter and the project's ImageClassifier around the same
    network keep the same per-sample scores, in the same order."""
    ours = build()
    theirs = project_classifier(copy.deepcopy(ours))
    settings = dict(alpha=0.5, rho=0.05, init_epochs=0, seed=3)
    ow_a = wrapper(ours, 'AUSAMOptimWrapper', **settings)
    ow_b = wrapper(theirs, 'AUSAMOptimWrapper', **settings)
    for step in range(3):
        batch = raw_batch(seed=step % 2)  # samples 0-7, 8-15, 0-7
        la = ours.train_step(batch, ow_a)
        lb = theirs.train_step(project_batch(batch), ow_b)
        assert float(la['sam_frac']) == float(lb['sam_frac']) == 0.5
    idx = torch.arange(16)
    sa, sb = ow_a.sample_scores(idx), ow_b.sample_scores(idx)
    assert torch.equal(sa.isnan(), sb.isnan()) and (~sa.isnan()).sum() >= 8
    torch.testing.assert_close(sa, sb, rtol=1e-4, atol=1e-6, equal_nan=True)
    seen = ~sa.isnan()
    assert torch.equal(sa[seen].argsort(), sb[seen].argsort())
    assert torch.equal(ow_a.selection_counts(idx), ow_b.selection_counts(idx))


def test_stock_type_with_ausam_names_the_switch():
    model = build('ImageClassifier')
    ow = wrapper(model, 'AUSAMOptimWrapper', alpha=0.5)
    with pytest.raises(RuntimeError, match='reduced loss') as err:
        model.train_step(raw_batch(), ow)
    assert "model.type='SAMImageClassifier'" in str(err.value)
    assert 'ausam_tasks.mmpretrain' in str(err.value)


@MODELS.register_module()
class BatchMeanLoss(nn.Module):
    """A user's loss that always averages over the batch."""

    def forward(self, cls_score, label, **kwargs):
        return F.cross_entropy(cls_score, label)


@MODELS.register_module()
class FixedSignatureLoss(nn.Module):
    """A user's loss without mmpretrain's reduction arguments."""

    def forward(self, cls_score, label, avg_factor=None):
        return F.cross_entropy(cls_score, label)


@MODELS.register_module()
class DoubledPerSampleLoss(nn.Module):
    """Per-sample losses that do not average to the batch loss."""

    def forward(self, cls_score, label, reduction_override=None, **kwargs):
        loss = F.cross_entropy(cls_score, label, reduction='none')
        return 2 * loss if reduction_override == 'none' else loss.mean()


@pytest.mark.parametrize(
    'loss, why',
    [
        ('BatchMeanLoss', r"returned 'loss' of shape \(\) for a batch of \d"),
        ('FixedSignatureLoss', 'does not take reduction_override'),
        ('DoubledPerSampleLoss', 'not its own batch loss'),
    ],
)
@pytest.mark.parametrize('method', ['SAMOptimWrapper', 'AUSAMOptimWrapper'])
def test_losses_without_per_sample_values_are_refused(loss, why, method):
    model = build(loss=dict(type=loss))
    ow = wrapper(model, method)
    with pytest.raises(PerSampleLossError, match=why) as err:
        model.train_step(raw_batch(), ow)
    msg = str(err.value)
    assert f'head LinearClsHead (loss {loss})' in msg
    assert "reduction_override='none'" in msg


def test_a_head_with_its_own_loss_is_refused():
    model = build(type='ArcFaceClsHead', loss=dict(type='CrossEntropyLoss'))
    with pytest.raises(PerSampleLossError, match='ArcFaceClsHead computes'):
        model.train_step(raw_batch(), wrapper(model, 'SAMOptimWrapper'))


def test_missing_sample_idx_names_pack_inputs():
    model = build()
    batch = raw_batch(meta_keys=('img_shape',))
    ow = wrapper(model, 'AUSAMOptimWrapper', alpha=0.5)
    with pytest.raises(KeyError, match=r'PackInputs\(meta_keys=\.\.\.\)'):
        model.train_step(batch, ow)


@pytest.mark.parametrize(
    'settings, error, match',
    [
        (dict(), ValueError, 'needs optim_wrapper.sam='),
        (dict(sam=dict(type='OptimWrapper')), ValueError, 'not a SAM-family'),
        (
            dict(sam=dict(type='AUSAMOptimWrapper', aplha=0.5)),
            TypeError,
            r"optim_wrapper.sam \(AUSAMOptimWrapper\).*'aplha'",
        ),
        (
            dict(type='ZeroOptimizer', sam=dict(type='SAMOptimWrapper')),
            ValueError,
            'keep the stock OptimWrapper',
        ),
    ],
)
def test_constructor_refuses_bad_settings(settings, error, match):
    cfg = dict(
        constructor='SAMOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.1),
        **settings,
    )
    with pytest.raises(error, match=match):
        build_optim_wrapper(build(), cfg)


def test_constructor_keeps_paramwise_cfg_and_clip_grad():
    model = build()
    ow = build_optim_wrapper(
        model,
        dict(
            constructor='SAMOptimWrapperConstructor',
            sam=dict(type='AUSAMOptimWrapper', alpha=0.5),
            optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
            paramwise_cfg=dict(norm_decay_mult=0.0),
            clip_grad=dict(max_norm=5.0),
        ),
    )
    assert type(ow).__name__ == 'AUSAMOptimWrapper'
    decays = {g['weight_decay'] for g in ow.optimizer.param_groups}
    assert decays == {0.0, 1e-4}
    assert ow.clip_grad_kwargs == dict(max_norm=5.0)

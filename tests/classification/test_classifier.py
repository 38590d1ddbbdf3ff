"""The classifier's loss / predict modes (per-sample protocol) and the accuracy
metric."""

import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import Evaluator

import tasks.classification  # noqa: F401
from ausam_tasks.engine import AUSAMOptimWrapper
from tasks.classification import ClsDataSample, ImageClassifier
from tasks.classification.registry import METRICS, MODELS
from tasks.classification.transforms import CIFAR_MEAN, CIFAR_STD


def make_model(label_smoothing=0.0):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            label_smoothing=label_smoothing,
            net=dict(type='cifar_resnet', depth=8, width=4, num_classes=5),
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                mean=CIFAR_MEAN,
                std=CIFAR_STD,
                batch_augment=dict(padding=4, flip_prob=0.5, cutout_size=8),
            ),
        )
    )


def make_batch(n=6):
    g = torch.Generator().manual_seed(1)
    inputs = [
        torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g)
        for _ in range(n)
    ]
    samples = [
        ClsDataSample(metainfo=dict(sample_idx=10 + i)) for i in range(n)
    ]
    for i, s in enumerate(samples):
        s.gt_label = i % 5
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('ls', [0.0, 0.1])
def test_loss_is_per_sample_cross_entropy(ls):
    model = make_model(ls).eval()
    data = model.data_preprocessor(make_batch(), False)
    out = model(**data, mode='loss')
    logits = model(data['inputs'], mode='tensor')
    labels = torch.arange(6) % 5
    # Independent label-smoothed CE: (1 - ls) * NLL + ls * mean(-log p).
    logp = logits.log_softmax(1)
    want = (1 - ls) * -logp[torch.arange(6), labels] + ls * -logp.mean(1)
    assert out['loss'].shape == (6,)
    torch.testing.assert_close(out['loss'], want)


def test_predict_sets_labels_and_scores():
    model = make_model().eval()
    data = model.data_preprocessor(make_batch(), False)
    preds = model(**data, mode='predict')
    logits = model(data['inputs'], mode='tensor')
    assert [int(p.pred_label) for p in preds] == logits.argmax(1).tolist()
    torch.testing.assert_close(
        torch.stack([p.pred_score for p in preds]), logits.softmax(1)
    )
    assert [p.sample_idx for p in preds] == list(range(10, 16))


def test_sgd_and_ausam_train_steps_through_the_mixin():
    from mmengine.optim import build_optim_wrapper

    model = make_model()
    sgd = build_optim_wrapper(
        model, dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))
    )
    log = model.train_step(make_batch(), sgd)
    assert log['loss'].dim() == 0
    ausam = build_optim_wrapper(
        model,
        dict(
            type='AUSAMOptimWrapper',
            alpha=0.5,
            rho=0.05,
            init_epochs=0,
            optimizer=dict(type='SGD', lr=0.1),
        ),
    )
    assert isinstance(ausam, AUSAMOptimWrapper)
    before = [p.detach().clone() for p in model.parameters()]
    log = model.train_step(make_batch(), ausam)
    assert float(log['sam_frac']) == pytest.approx(0.5)
    assert any(
        not torch.equal(a, b) for a, b in zip(before, model.parameters())
    )


def test_accuracy_metric_matches_a_hand_count():
    metric = METRICS.build(dict(type='Accuracy', topk=(1, 2)))
    evaluator = Evaluator(metric)
    scores = torch.tensor(
        [[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]]
    )
    labels = [1, 1, 0, 2]  # top-1 hits: 1 of 4; top-2 hits: samples 0, 1, 3
    samples = []
    for s, y in zip(scores, labels):
        d = ClsDataSample()
        d.gt_label, d.pred_score, d.pred_label = y, s, s.argmax()
        samples.append(d)
    evaluator.process(samples[:2])
    evaluator.process(samples[2:])
    res = evaluator.evaluate(4)
    assert res['accuracy/top1'] == pytest.approx(25.0)
    assert res['accuracy/top2'] == pytest.approx(75.0)


def test_bad_settings():
    with pytest.raises(ValueError, match='label_smoothing'):
        ImageClassifier(net=torch.nn.Identity(), label_smoothing=1.0)
    model = make_model()
    with pytest.raises(ValueError, match='mode'):
        model(torch.zeros(1, 3, 32, 32), mode='train')


def test_closure_with_outputs_returns_the_logits_of_the_positions_asked():
    from mmengine.optim import build_optim_wrapper

    from ausam_tasks import SAM
    from ausam_tasks.engine import SAMOptimWrapper

    class Recording(SAM):
        needs = frozenset({'outputs', 'model'})

        def rule(self, closure, ctx):
            with torch.no_grad():  # a direct forward, before the update
                self.logits = ctx.model.net(closure.data['inputs'])
            self.whole = closure(None, with_outputs=True)
            self.part = closure(torch.tensor([4, 1]), with_outputs=True)
            return super().rule(closure, ctx)

    class RecordOutputs(SAMOptimWrapper):
        method = Recording

    model = make_model().eval()  # fixed BN statistics: subsets comparable
    ow = build_optim_wrapper(
        model,
        dict(type=RecordOutputs, optimizer=dict(type='SGD', lr=0.1)),
    )
    model.train_step(make_batch(), ow)
    ow = ow.core
    logits = ow.logits
    # make_batch labels are i % 5.
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    losses, outputs = ow.whole
    assert set(losses) == {'loss'}
    torch.testing.assert_close(outputs, logits)
    torch.testing.assert_close(
        losses['loss'], F.cross_entropy(logits, labels, reduction='none')
    )
    losses, outputs = ow.part
    torch.testing.assert_close(outputs, logits[[4, 1]])
    torch.testing.assert_close(
        losses['loss'],
        F.cross_entropy(logits[[4, 1]], labels[[4, 1]], reduction='none'),
    )

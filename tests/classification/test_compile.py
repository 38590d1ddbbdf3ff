"""ImageClassifier(compile=...): a compiled network trains like the eager
one through the AUSAM wrapper's steps, and bad settings fail at build.

The compiled side uses the ``aot_eager`` backend (dynamo's graph capture
and AOT autograd, no inductor code generation): CPU inductor compilation of
even this tiny network takes minutes on two shared cores."""

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch._dynamo.testing import CompileCounterWithBackend

import tasks.classification  # noqa: F401
from tasks.classification import ClsDataSample
from tasks.classification.registry import MODELS
from tasks.classification.transforms import CIFAR_MEAN, CIFAR_STD


def make_model(compile=None):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            net=dict(type='cifar_resnet', depth=8, width=4, num_classes=5),
            data_preprocessor=dict(
                type='ClsDataPreprocessor', mean=CIFAR_MEAN, std=CIFAR_STD
            ),
            compile=compile,
        )
    )


def make_batch(n, start):
    g = torch.Generator().manual_seed(start)
    inputs = [
        torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g)
        for _ in range(n)
    ]
    samples = [
        ClsDataSample(metainfo=dict(sample_idx=start + i)) for i in range(n)
    ]
    for i, s in enumerate(samples):
        s.gt_label = (start + i) % 5
    return dict(inputs=inputs, data_samples=samples)


def make_wrapper(model):
    return build_optim_wrapper(
        model,
        dict(
            type='AUSAMOptimWrapper',
            alpha=0.5,
            rho=0.05,
            init_epochs=0,
            warmup_epochs=0,
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
        ),
    )


def test_compiled_and_eager_steps_agree():
    torch._dynamo.reset()
    counter = CompileCounterWithBackend('aot_eager')
    eager = make_model()
    compiled = make_model(dict(backend=counter))
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    ow_e, ow_c = make_wrapper(eager), make_wrapper(compiled)
    # Two full batches of 8 (subsets of 4), then a short last batch of 6
    # (subset of 3): a new shape, so dynamo recompiles.
    for n, start in [(8, 0), (8, 8), (6, 16)]:
        log_e = eager.train_step(make_batch(n, start), ow_e)
        log_c = compiled.train_step(make_batch(n, start), ow_c)
        assert log_c.keys() == log_e.keys()
        for key in log_e:
            torch.testing.assert_close(log_c[key], log_e[key])
        state_e, state_c = eager.state_dict(), compiled.state_dict()
        for key in state_e:
            torch.testing.assert_close(
                state_c[key], state_e[key], rtol=1e-5, atol=1e-6, msg=key
            )
    assert counter.frame_count >= 1  # the network did run compiled


@pytest.mark.parametrize(
    'setting, error, words',
    [
        ('yes', TypeError, 'dict of torch.compile arguments'),
        (dict(modes='default'), ValueError, "unknown keys ['modes']"),
    ],
)
def test_bad_compile_setting_fails_at_build(setting, error, words):
    with pytest.raises(error) as info:
        make_model(setting)
    assert 'ImageClassifier compile' in str(info.value)
    assert words in str(info.value)

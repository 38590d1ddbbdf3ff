"""ImageClassifier(compile=...): a compiled network trains like the eager
one through the SAM and AUSAM wrappers' steps (the scoring epoch's full
batches, the subsets after it, the short last batch), each forward marks a
CUDA-graph step when CUDA graphs are on, and bad settings fail at build.

The compiled side uses the ``aot_eager`` backend (dynamo's graph capture
and AOT autograd, no inductor code generation): CPU inductor compilation of
even this tiny network takes minutes on two shared cores."""

import pytest
import torch
from mmengine.logging import MessageHub
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


def make_wrapper(model, kind='AUSAM', init_epochs=0):
    settings = dict(type='SAMOptimWrapper', rho=0.05)
    if kind == 'AUSAM':
        settings.update(
            type='AUSAMOptimWrapper',
            alpha=0.5,
            init_epochs=init_epochs,
            warmup_epochs=0,
        )
    return build_optim_wrapper(
        model,
        dict(**settings, optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
    )


def train_both(eager, compiled, batches, kind='AUSAM', init_epochs=0):
    """Step both models through ``batches`` ((size, start, epoch)); after
    each step the logs, weights and BN buffers must agree."""
    ow_e = make_wrapper(eager, kind, init_epochs)
    ow_c = make_wrapper(compiled, kind, init_epochs)
    for n, start, epoch in batches:
        set_epoch(epoch)
        log_e = eager.train_step(make_batch(n, start), ow_e)
        log_c = compiled.train_step(make_batch(n, start), ow_c)
        assert log_c.keys() == log_e.keys()
        for key in log_e:
            torch.testing.assert_close(log_c[key], log_e[key], msg=key)
        state_e, state_c = eager.state_dict(), compiled.state_dict()
        for key in state_e:
            torch.testing.assert_close(
                state_c[key], state_e[key], rtol=1e-5, atol=1e-6, msg=key
            )


# (batch size, first sample index, epoch): AUSAM's scoring epoch 0 trains
# on full batches (8, then a short last batch of 6), epoch 1 on subsets (4
# and 3): four shapes, each in both passes.
EPOCHS = [(8, 0, 0), (6, 8, 0), (8, 0, 1), (6, 8, 1)]


def set_epoch(epoch):
    MessageHub.get_current_instance().update_info('epoch', epoch)


@pytest.fixture(autouse=True)
def fresh_state():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    MessageHub.get_current_instance().runtime_info.pop('epoch', None)


@pytest.mark.parametrize('kind', ['SAM', 'AUSAM'])
def test_compiled_and_eager_steps_agree(kind):
    counter = CompileCounterWithBackend('aot_eager')
    eager = make_model()
    compiled = make_model(dict(backend=counter))
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    train_both(eager, compiled, EPOCHS, kind, init_epochs=1)
    assert counter.frame_count >= 1  # the network did run compiled


def test_static_shapes_give_one_graph_per_size_and_pass():
    """dynamic=False (as CUDA graphs need): the four batch shapes of the
    AUSAM run, each in the pass at w and the pass at w + eps (BatchNorm
    momentum 0 is another graph), and nothing falls back to eager."""
    counter = CompileCounterWithBackend('aot_eager')
    eager = make_model()
    compiled = make_model(
        dict(backend=counter, dynamic=False, recompile_limit=16)
    )
    train_both(eager, compiled, EPOCHS, 'AUSAM', init_epochs=1)
    assert counter.frame_count == 4 * 2


def test_each_forward_marks_a_cudagraph_step(monkeypatch):
    """With CUDA graphs on, every forward (each SAM pass, each evaluation
    batch) starts a cudagraph step, and handed-out logits are copies of
    the graph's output; steps still match the eager model."""
    marks = []
    monkeypatch.setattr(
        torch.compiler,
        'cudagraph_mark_step_begin',
        lambda: marks.append(len(marks)),
    )
    eager = make_model()
    compiled = make_model(
        dict(backend='aot_eager', dynamic=False, mark_steps=True)
    )
    assert compiled.mark_steps and not eager.mark_steps
    train_both(eager, compiled, EPOCHS[:1], 'SAM')
    assert len(marks) == 2  # one SAM step: two passes
    train_both(eager, compiled, EPOCHS[2:3], 'AUSAM', init_epochs=0)
    assert len(marks) == 4
    raw = []
    hook = compiled.net.register_forward_hook(lambda m, i, o: raw.append(o))
    compiled.eval()
    with torch.no_grad():
        batch = compiled.data_preprocessor(make_batch(4, 0), False)
        logits = compiled(batch['inputs'], mode='tensor')
    hook.remove()
    assert len(marks) == 5
    assert logits.data_ptr() != raw[0].data_ptr()
    torch.testing.assert_close(logits, raw[0])


@pytest.mark.parametrize(
    'setting, marks',
    [
        (dict(mode='reduce-overhead'), True),
        (dict(mode='max-autotune'), True),
        (dict(options={'triton.cudagraphs': True}), True),
        (dict(mode='reduce-overhead', mark_steps=False), False),
        (dict(mode='default'), False),
        (True, False),
        (None, False),
    ],
)
def test_cudagraph_settings_switch_step_marking(setting, marks):
    assert make_model(setting).mark_steps is marks


def test_recompile_limit_is_raised_never_lowered():
    cfg = torch._dynamo.config
    with cfg.patch(recompile_limit=8):  # restored afterwards
        make_model(dict(backend='aot_eager', recompile_limit=16))
        assert cfg.recompile_limit == 16
        make_model(dict(backend='aot_eager', recompile_limit=4))
        assert cfg.recompile_limit == 16


@pytest.mark.parametrize(
    'setting, error, words',
    [
        ('yes', TypeError, 'dict of torch.compile arguments'),
        (dict(modes='default'), ValueError, "unknown keys ['modes']"),
        (dict(recompile_limit=0), ValueError, 'recompile_limit'),
    ],
)
def test_bad_compile_setting_fails_at_build(setting, error, words):
    with pytest.raises(error) as info:
        make_model(setting)
    assert 'ImageClassifier compile' in str(info.value)
    assert words in str(info.value)

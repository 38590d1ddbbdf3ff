"""On a CUDA device: AUSAM and SAM steps through a network compiled with
CUDA graphs (``mode='reduce-overhead'``, static shapes) match the eager
network's, over the scoring epoch's full and short batches and the subsets
after it, replayed several times. Skipped without CUDA (run it in a device
session: ``pytest tests/cuda -q``)."""

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper

import tasks.classification  # noqa: F401
from tasks.classification import ClsDataSample
from tasks.classification.registry import MODELS
from tasks.classification.transforms import CIFAR_MEAN, CIFAR_STD

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device'
)

# (batch size, first sample index, epoch): the scoring epoch's full and
# short last batch, then three epochs of subsets (record, then replay).
BATCHES = [(32, 0, 0), (20, 32, 0)] + [
    (n, s, e) for e in (1, 2, 3) for n, s in ((32, 0), (20, 32))
]


def make_model(compile=None):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            net=dict(type='cifar_resnet', depth=8, width=8, num_classes=5),
            data_preprocessor=dict(
                type='ClsDataPreprocessor', mean=CIFAR_MEAN, std=CIFAR_STD
            ),
            compile=compile,
        )
    ).cuda()


def make_batch(n, start):
    g = torch.Generator().manual_seed(start)
    samples = []
    for i in range(n):
        s = ClsDataSample(metainfo=dict(sample_idx=start + i))
        s.gt_label = (start + i) % 5
        samples.append(s)
    inputs = [
        torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=g)
        for _ in range(n)
    ]
    return dict(inputs=inputs, data_samples=samples)


def make_wrapper(model, kind):
    settings = dict(type='SAMOptimWrapper', rho=0.05)
    if kind == 'AUSAM':
        settings.update(
            type='AUSAMOptimWrapper', alpha=0.5, init_epochs=1, warmup_epochs=0
        )
    return build_optim_wrapper(
        model,
        dict(**settings, optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
    )


@pytest.fixture(autouse=True)
def exact_math():
    # TF32 would differ between the two sides for reasons unrelated to
    # the graphs.
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    torch.backends.cuda.matmul.allow_tf32 = saved[0]
    torch.backends.cudnn.allow_tf32 = saved[1]
    MessageHub.get_current_instance().runtime_info.pop('epoch', None)


@pytest.mark.parametrize('kind', ['SAM', 'AUSAM'])
def test_cudagraph_steps_match_eager(kind):
    from torch._dynamo.utils import counters

    counters.clear()
    eager = make_model()
    graphs = make_model(
        dict(mode='reduce-overhead', dynamic=False, recompile_limit=16)
    )
    assert graphs.mark_steps
    ow_e, ow_g = make_wrapper(eager, kind), make_wrapper(graphs, kind)
    hub = MessageHub.get_current_instance()
    for n, start, epoch in BATCHES:
        hub.update_info('epoch', epoch)
        log_e = eager.train_step(make_batch(n, start), ow_e)
        log_g = graphs.train_step(make_batch(n, start), ow_g)
        for key in log_e:
            torch.testing.assert_close(
                log_g[key], log_e[key], rtol=1e-4, atol=1e-5, msg=key
            )
    state_e, state_g = eager.state_dict(), graphs.state_dict()
    for key in state_e:
        torch.testing.assert_close(
            state_g[key], state_e[key], rtol=1e-3, atol=1e-4, msg=key
        )
    skips = dict(counters['inductor'])
    assert not skips.get('cudagraph_skips'), skips  # graphs were used
    # Evaluation (another graph) hands out logits that outlive the next
    # replay.
    graphs.eval()
    eager.eval()
    with torch.no_grad():
        x = graphs.data_preprocessor(make_batch(16, 0), False)['inputs']
        first = graphs(x, mode='tensor')
        graphs(x.flip(0), mode='tensor')
        graphs(x, mode='tensor')
        torch.testing.assert_close(
            first, eager(x, mode='tensor'), rtol=1e-4, atol=1e-5
        )

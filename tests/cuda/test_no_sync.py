"""A steady-state SAM-family step without host synchronisation.

On a GPU each AUSAM and SAM step after the scoring epoch runs through the
real wrapper, protocol (closure, subsets) and a small CIFAR ResNet inside
``torch.cuda.set_sync_debug_mode('error')``, so any host sync (``.item()``,
a blocking copy, ``nonzero``, ...) fails it. The same code path runs on the
CPU too (without the sync check), so CI exercises the file.

On a device machine: ``python -m pytest tests/cuda -q`` (docs/gpu.md).
"""

import contextlib

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import tasks.classification  # noqa: F401
from tasks.classification import ClsDataSample
from tasks.classification.registry import MODELS
from tasks.classification.transforms import CIFAR_MEAN, CIFAR_STD

CUDA = pytest.param(
    'cuda',
    marks=pytest.mark.skipif(
        not torch.cuda.is_available(), reason='needs a CUDA device'
    ),
)
BATCH = 16
WRAPPERS = {
    'ausam': dict(type='AUSAMOptimWrapper', alpha=0.5, warmup_epochs=0),
    'ausam-uniform': dict(
        type='AUSAMOptimWrapper', alpha=0.5, selector='uniform'
    ),
    'ausam-topk': dict(
        type='AUSAMOptimWrapper', alpha=0.5, selector='topk_loss'
    ),
    'sam': dict(type='SAMOptimWrapper'),
}


def make_model(device):
    torch.manual_seed(0)
    cfg = dict(
        type='ImageClassifier',
        net=dict(type='cifar_resnet', depth=8, width=4, num_classes=5),
        data_preprocessor=dict(
            type='ClsDataPreprocessor', mean=CIFAR_MEAN, std=CIFAR_STD
        ),
    )
    # Another test's Runner may have left mmengine's scope as the default.
    with DefaultScope.overwrite_default_scope('tasks.classification'):
        return MODELS.build(cfg).to(device)


def make_batch(step, device):
    """A batch already on the device, as a pinned, non-blocking loader
    would leave it (the copy in is the data loader's, not the step's)."""
    g = torch.Generator().manual_seed(step)
    start = (step * BATCH) % 64  # a 64-sample dataset
    inputs = torch.randint(0, 256, (BATCH, 3, 32, 32), generator=g)
    samples = []
    for i in range(BATCH):
        s = ClsDataSample(metainfo=dict(sample_idx=start + i))
        s.gt_label = torch.tensor((start + i) % 5, device=device)
        samples.append(s)
    return dict(
        inputs=list(inputs.to(torch.uint8).to(device)), data_samples=samples
    )


@contextlib.contextmanager
def no_host_sync(device):
    if device != 'cuda':
        yield
        return
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.parametrize('device', ['cpu', CUDA])
@pytest.mark.parametrize('method', sorted(WRAPPERS))
def test_steady_state_steps_do_not_sync(device, method):
    model = make_model(device)
    ow = build_optim_wrapper(
        model,
        dict(
            WRAPPERS[method],
            rho=0.05,
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
            **(dict(num_samples=64) if 'ausam' in method else {}),
        ),
    )
    # As SharpnessAwareLoggerHook does: log variables held on the device;
    # the finite check waits for the next log interval (none in the window).
    ow.defer_log_vars()
    ow.core.finite.every = 1000
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 0)  # AUSAM's scoring epoch: every sample
    for step in range(4):
        model.train_step(make_batch(step, device), ow)
    hub.update_info('epoch', 1)
    model.train_step(make_batch(4, device), ow)  # first subset step
    steady = 3
    batches = [make_batch(step, device) for step in range(5, 5 + steady)]
    with no_host_sync(device):
        for data in batches:
            out = model.train_step(data, ow)
    ow.core.check_finite()  # the deferred check: one read, after
    rows = ow.flush_log_vars()
    if device == 'cuda':
        assert out == {}  # held, nothing for the message hub to read
        assert len(rows) == 5 + steady
    else:
        assert 'loss' in out  # a CPU step hands its values over at once
    frac = [r['sam_frac'] for r in rows] if rows else [out['sam_frac']]
    assert frac[-1] == (1.0 if method == 'sam' else 0.5)
    params = [p for p in model.parameters()]
    assert all(torch.isfinite(p).all() for p in params)
    if 'ausam' in method:
        table = ow.core.table
        assert table.device.type == device
        # 4 scoring steps cover the 64 samples once; the subset steps add
        # 8 scores each.
        assert int(ow.selection_counts().sum()) == 64 + 8 * (1 + steady)


@pytest.mark.parametrize('device', ['cpu', CUDA])
def test_deferred_finite_check_names_the_step_on_the_device(device):
    model = make_model(device)
    ow = build_optim_wrapper(
        model,
        dict(
            type='AUSAMOptimWrapper',
            alpha=0.5,
            finite_check='deferred',
            optimizer=dict(type='SGD', lr=0.05),
        ),
    )
    ow.core.finite.every = 1000
    MessageHub.get_current_instance().update_info('epoch', 0)
    model.train_step(make_batch(0, device), ow)
    bad = make_batch(1, device)
    model.data_preprocessor.std[0] = 0.0  # inf inputs -> non-finite loss
    with no_host_sync(device):
        model.train_step(bad, ow)  # recorded on the device, no raise
    with pytest.raises(
        FloatingPointError, match=r"step 1: loss 'loss' at w is not finite"
    ):
        ow.core.check_finite()


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_score_table_moves_between_cpu_and_cuda_checkpoints():
    from ausam_tasks.scores import ScoreTable

    cpu = ScoreTable(8)
    cpu.update(torch.tensor([1, 3, 3]), torch.tensor([0.5, 1.0, 2.0]))
    gpu = ScoreTable(8).to('cuda')
    gpu.load_state_dict(cpu.state_dict())  # saved on the CPU, run on CUDA
    assert gpu.value.is_cuda
    gpu.update(torch.tensor([3]), torch.tensor([4.0]))
    back = ScoreTable(8)
    back.load_state_dict(gpu.state_dict())  # and back
    assert not back.value.is_cuda
    assert torch.equal(
        back.scores(torch.arange(8)), gpu.scores(torch.arange(8))
    )
    assert back.scores(torch.tensor([3]))[0] == (1.0 + 2.0 + 4.0) / 3

"""Steady-state SAM-family steps checked for host synchronisation.

The checks of ``test_no_sync.py`` without pytest, which the device machine
lacks: ``PYTHONPATH=$PWD python -m tests.cuda.no_sync`` runs every case on
CUDA (and on the CPU without the sync check) and exits non-zero if any
fails. On CUDA each steady-state step runs inside
``torch.cuda.set_sync_debug_mode('error')``, so any host sync (``.item()``,
a blocking copy, ``nonzero``, ...) raises, naming the call.
"""

import contextlib
import sys
import tempfile
import traceback
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch.utils._python_dispatch import TorchDispatchMode

import tasks.classification  # noqa: F401
from tasks.classification import ClsDataSample, DeviceCIFAR10
from tasks.classification.data_prep import (
    synthetic_images,
    write_cifar_pickles,
)
from tasks.classification.registry import MODELS
from tasks.classification.transforms import CIFAR_MEAN, CIFAR_STD

BATCH = 16
DATASET = 64
ROOT = Path(__file__).resolve().parents[2]
FAST = (
    ROOT / 'configs/classification/resnet18_ausam-a0.5_1xb128-fast_cifar10.py'
)
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
    start = (step * BATCH) % DATASET
    inputs = torch.randint(0, 256, (BATCH, 3, 32, 32), generator=g)
    samples = []
    for i in range(BATCH):
        s = ClsDataSample(metainfo=dict(sample_idx=start + i))
        s.gt_label = torch.tensor((start + i) % 5, device=device)
        samples.append(s)
    inputs = list(inputs.to(torch.uint8).to(device))
    return dict(inputs=inputs, data_samples=samples)


@contextlib.contextmanager
def no_host_sync(device):
    """On CUDA, any host synchronisation inside raises."""
    if device != 'cuda':
        yield
        return
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


def build(model, **cfg):
    return build_optim_wrapper(
        model,
        dict(
            cfg,
            rho=0.05,
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
        ),
    )


def steady_state_steps(device, method, steady=3):
    """Scoring epoch, one subset step, then ``steady`` steps checked."""
    model = make_model(device)
    cfg = dict(WRAPPERS[method])
    if 'ausam' in method:
        cfg['num_samples'] = DATASET
    ow = build(model, **cfg)
    # As SharpnessAwareLoggerHook does: log variables held on the device;
    # the finite check waits for the next log interval (none in the window).
    ow.defer_log_vars()
    ow.core.finite.every = 1000
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 0)  # AUSAM's scoring epoch: every sample
    for step in range(DATASET // BATCH):
        model.train_step(make_batch(step, device), ow)
    hub.update_info('epoch', 1)
    first = DATASET // BATCH
    model.train_step(make_batch(first, device), ow)  # first subset step
    batches = [make_batch(first + 1 + i, device) for i in range(steady)]
    with no_host_sync(device):
        for data in batches:
            out = model.train_step(data, ow)
    ow.core.check_finite()  # the deferred check: one read, after
    rows = ow.flush_log_vars()
    if device == 'cuda':
        assert out == {}, out  # held: nothing for the message hub to read
        assert len(rows) == first + 1 + steady, len(rows)
    else:
        assert 'loss' in out, out  # a CPU step hands them over at once
    frac = rows[-1]['sam_frac'] if rows else out['sam_frac']
    assert frac == (1.0 if method == 'sam' else 0.5), frac
    assert all(torch.isfinite(p).all() for p in model.parameters())
    if 'ausam' in method:
        assert ow.core.table.device.type == device
        # The scoring epoch scores every sample once; each subset step
        # scores half a batch.
        counts = int(ow.selection_counts().sum())
        assert counts == DATASET + BATCH // 2 * (1 + steady), counts


def deferred_finite_check(device):
    """A non-finite loss is recorded without a sync and raised later."""
    model = make_model(device)
    ow = build(model, type='AUSAMOptimWrapper', finite_check='deferred')
    ow.core.finite.every = 1000
    MessageHub.get_current_instance().update_info('epoch', 0)
    model.train_step(make_batch(0, device), ow)
    bad = make_batch(1, device)
    model.data_preprocessor.std[0] = 0.0  # inf inputs: non-finite loss
    with no_host_sync(device):
        model.train_step(bad, ow)  # recorded on the device, no raise
    try:
        ow.core.check_finite()
    except FloatingPointError as err:
        want = "step 1: loss 'loss' at w is not finite"
        assert str(err).startswith(want), err
    else:
        raise AssertionError('the deferred check did not raise')


def score_table_between_devices(device):
    """A table saved on the CPU loads on ``device`` and back, unchanged."""
    from ausam_tasks.scores import ScoreTable

    cpu = ScoreTable(8)
    cpu.update(torch.tensor([1, 3, 3]), torch.tensor([0.5, 1.0, 2.0]))
    there = ScoreTable(8).to(device)
    there.load_state_dict(cpu.state_dict())
    assert there.value.device.type == device
    there.update(torch.tensor([3]), torch.tensor([4.0]))
    back = ScoreTable(8)
    back.load_state_dict(there.state_dict())
    assert back.value.device.type == 'cpu'
    idx = torch.arange(8)
    torch.testing.assert_close(
        back.scores(idx), there.scores(idx), rtol=0, atol=0, equal_nan=True
    )
    assert back.scores(torch.tensor([3]))[0] == (1.0 + 2.0 + 4.0) / 3


# Operators that bring a tensor's value to the host (or, for multinomial,
# unique, bincount, nonzero, ..., do so inside their CUDA implementation).
HOST_READS = {
    '_local_scalar_dense',
    'is_nonzero',
    'equal',
    'nonzero',
    'masked_select',
    'unique_dim',
    '_unique2',
    'unique_consecutive',
    'bincount',
    'multinomial',
    'repeat_interleave',
}


class HostReads(TorchDispatchMode):
    """Records each host-reading operator with the project function that
    called it (the innermost frame under ``ausam_tasks``/``tasks``)."""

    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in HOST_READS:
            ours = [
                f'{Path(f.filename).name}:{f.name}'
                for f in traceback.extract_stack()
                if f.filename.startswith(str(ROOT / 'ausam_tasks'))
                or f.filename.startswith(str(ROOT / 'tasks'))
            ]
            self.reads.append((name, ours[-1] if ours else '?'))
        return func(*args, **(kwargs or {}))


def host_reads_of_a_cpu_step(method):
    """The CPU stand-in for the sync check: every operator of one
    steady-state step that would read a device value on the host, except
    the range check of the batch's indices, which are host values there.
    The CUDA kernels' own syncs (e.g. inside topk) it cannot see."""
    model = make_model('cpu')
    cfg = dict(WRAPPERS[method], finite_check='deferred')
    if 'ausam' in method:
        cfg['num_samples'] = DATASET
    ow = build(model, **cfg)
    ow.defer_log_vars(on_cpu_too=True)
    ow.core.finite.every = 1000
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 0)
    for step in range(DATASET // BATCH + 1):
        if step == DATASET // BATCH:
            hub.update_info('epoch', 1)
        model.train_step(make_batch(step, 'cpu'), ow)
    data = make_batch(DATASET // BATCH + 1, 'cpu')
    with HostReads() as mode:
        model.train_step(data, ow)
    return [r for r in mode.reads if r[1] != 'scores.py:_check']


def device_data_fetch_and_step(device):
    """The fast path's data and step: a ``DeviceCIFAR10`` batch fetched
    (the sampler's host indices copied in) and trained on with the fast
    config's model (batch augmentation on the device) and AUSAM wrapper
    (bf16). Returns the host reads of the checked fetch and step, which
    on CUDA run inside the sync check."""
    cfg = Config.fromfile(str(FAST))
    cfg.model.net = dict(type='cifar_resnet', depth=8, width=4)
    cfg.model.compile = None  # CUDA graphs: tests/cuda/test_cudagraphs.py
    with tempfile.TemporaryDirectory() as root:
        imgs, labels = synthetic_images(DATASET, 10, seed=3)
        write_cifar_pickles(
            root, imgs, labels, 'cifar10', imgs[:8], labels[:8]
        )
        with DefaultScope.overwrite_default_scope('tasks.classification'):
            ds = DeviceCIFAR10(
                data_root=root, pipeline=[], download=False, device=device
            )
            torch.manual_seed(0)
            model = MODELS.build(cfg.model).to(device)
            ow = build_optim_wrapper(
                model,
                dict(
                    cfg.optim_wrapper,
                    num_samples=len(ds),
                    finite_check='deferred',
                ),
            )
    ow.defer_log_vars(on_cpu_too=True)
    ow.core.finite.every = 1000
    hub = MessageHub.get_current_instance()
    order = torch.randperm(DATASET, generator=torch.Generator().manual_seed(0))
    batches = [order[i : i + BATCH].tolist() for i in range(0, DATASET, BATCH)]
    hub.update_info('epoch', 0)  # the scoring epoch: every sample
    for indices in batches:
        model.train_step(ds.__getitems__(indices), ow)
    hub.update_info('epoch', 1)
    model.train_step(ds.__getitems__(batches[0]), ow)  # first subset step
    reads = contextlib.nullcontext() if device == 'cuda' else HostReads()
    with no_host_sync(device), reads as mode:
        model.train_step(ds.__getitems__(batches[1]), ow)
    ow.core.check_finite()
    rows = ow.flush_log_vars()
    assert rows[-1]['sam_frac'] == 0.5, rows[-1]
    assert ds.images.device.type == device
    assert all(torch.isfinite(p).all() for p in model.parameters())
    if device == 'cuda':
        return []
    # The range check of the batch's host indices reads host values only.
    return [r for r in mode.reads if r[1] != 'scores.py:_check']


def cases(device):
    out = [
        (f'{m}-{device}', steady_state_steps, (device, m)) for m in WRAPPERS
    ]
    out.append((f'finite-{device}', deferred_finite_check, (device,)))
    out.append((f'table-{device}', score_table_between_devices, (device,)))
    out.append((f'device-data-{device}', check_device_data, (device,)))
    return out


def check_device_data(device):
    reads = device_data_fetch_and_step(device)
    assert reads == [], reads


def main() -> int:
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    print(f'torch {torch.__version__}, devices {devices}')
    failed = 0
    for device in devices:
        for name, fn, args in cases(device):
            try:
                fn(*args)
                print(f'PASS {name}')
            except Exception:  # report every case, then fail
                failed += 1
                print(f'FAIL {name}\n{traceback.format_exc()}')
    if 'cuda' not in devices:
        print('no CUDA device: only the CPU path ran')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

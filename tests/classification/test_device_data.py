"""The on-device data path (DeviceCIFAR10): the same images, labels and
sample_idx as the plain CIFAR10 pipeline for the same indices and the same
sampler (mmengine's DefaultSampler: shuffling per seed and epoch), the same
training step, a kill-and-resume identical to the uninterrupted run, and
clear errors for loader settings it cannot serve."""

from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import tasks.classification  # noqa: F401
from tasks.classification import DeviceCIFAR10
from tasks.classification.device_data import BatchSamples
from tasks.classification.registry import DATASETS, MODELS

CONFIGS = Path(__file__).resolve().parents[2] / 'configs/classification'
FAST = CONFIGS / 'resnet18_ausam-a0.5_1xb128-fast_cifar10.py'
PLAIN = CONFIGS / 'resnet18_ausam-a0.5_1xb128_cifar10.py'


def loader_cfg(path, root, split='train', batch_size=4, **dataset):
    cfg = Config.fromfile(str(path))
    dl = cfg.train_dataloader if split == 'train' else cfg.val_dataloader
    dl.update(batch_size=batch_size, num_workers=0, persistent_workers=False)
    dl.dataset.update(data_root=str(root), download=False, **dataset)
    return dl


def build_loader(path, root, seed=0, **kw):
    with DefaultScope.overwrite_default_scope('tasks.classification'):
        return Runner.build_dataloader(loader_cfg(path, root, **kw), seed=seed)


def plain_batch(batch):
    """(images (B, 3, 32, 32), labels, sample_idx) of either path."""
    images = batch['inputs']
    if isinstance(images, list):
        images = torch.stack(images)
    samples = batch['data_samples']
    labels = [int(s.gt_label) for s in samples]
    return images, labels, [int(s.get('sample_idx')) for s in samples]


@pytest.mark.parametrize('split', ['train', 'test'])
@pytest.mark.parametrize('indices', [None, 12])
def test_device_batches_equal_the_plain_pipelines(
    cifar10_root, split, indices
):
    """Golden: the plain CIFAR10 dataset with its pipeline, loader and
    collate, for the whole set and for a subset (``indices``), across two
    shuffled epochs."""
    kw = dict(split=split, indices=indices)
    plain = build_loader(PLAIN, cifar10_root, **kw)
    fast = build_loader(FAST, cifar10_root, **kw)
    assert isinstance(fast.dataset, DeviceCIFAR10)
    assert len(fast.dataset) == len(plain.dataset)
    assert len(fast) == len(plain)
    seen = []
    for epoch in (0, 1):
        plain.sampler.set_epoch(epoch)
        fast.sampler.set_epoch(epoch)
        order = []
        for a, b in zip(plain, fast, strict=True):
            img_a, lab_a, idx_a = plain_batch(a)
            img_b, lab_b, idx_b = plain_batch(b)
            assert img_b.dtype == torch.uint8
            assert torch.equal(img_a, img_b)
            assert lab_a == lab_b and idx_a == idx_b
            order += idx_b
            if split == 'train':
                samples = b['data_samples']
                assert isinstance(samples, BatchSamples)
                assert samples.gt_labels.tolist() == lab_b
        assert sorted(order) == list(range(len(fast.dataset)))
        seen.append(order)
    if split == 'train':  # shuffled, differently per epoch
        assert seen[0] != seen[1]


def test_same_seed_same_order_other_seed_other_order(cifar10_root):
    def order(seed):
        return [
            i
            for b in build_loader(FAST, cifar10_root, seed=seed)
            for i in plain_batch(b)[2]
        ]

    assert order(3) == order(3)
    assert order(3) != order(4)


def test_a_training_step_on_device_batches_equals_the_plain_one(
    cifar10_root,
):
    """The same AUSAM step (batch augmentation, selection, both passes)
    from a device batch and from the plain pipeline's batch."""
    cfg = Config.fromfile(str(FAST))
    cfg.model.net = dict(type='cifar_resnet', depth=8, width=4)
    cfg.model.compile = None
    cfg.optim_wrapper.update(init_epochs=0, dtype=None)
    results = []
    for path in (PLAIN, FAST):
        with DefaultScope.overwrite_default_scope('tasks.classification'):
            torch.manual_seed(0)
            model = MODELS.build(cfg.model)
            ow = build_optim_wrapper(model, cfg.optim_wrapper)
            batch = next(iter(build_loader(path, cifar10_root, batch_size=8)))
            torch.manual_seed(1)  # the batch augmentation's draws
            log = model.train_step(batch, ow)
        results.append((log, model.state_dict()))
    (log_a, state_a), (log_b, state_b) = results
    assert float(log_a['sam_frac']) == 0.5
    for key in log_a:
        assert torch.equal(log_a[key], log_b[key]), key
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def test_bad_loader_settings_fail_clearly(cifar10_root):
    with pytest.raises(ValueError, match='pipeline=\\[\\]'):
        DATASETS.build(
            dict(
                type='DeviceCIFAR10',
                data_root=str(cifar10_root),
                pipeline=[dict(type='PackClsInputs')],
            )
        )
    dl = loader_cfg(FAST, cifar10_root)
    dl.pop('collate_fn')  # mmengine's default: pseudo_collate
    with DefaultScope.overwrite_default_scope('tasks.classification'):
        loader = Runner.build_dataloader(dl, seed=0)
    with pytest.raises(KeyError, match='device_batch_collate'):
        next(iter(loader))
    dl = loader_cfg(FAST, cifar10_root)
    dl.num_workers = 1
    with DefaultScope.overwrite_default_scope('tasks.classification'):
        loader = Runner.build_dataloader(dl, seed=0)
    with pytest.raises(RuntimeError, match='num_workers=0'):
        next(iter(loader))


def run_fast(root, work_dir, kill_after=None, resume=False):
    """The fast config through the Runner: tiny network, 20 images in
    batches of 4, two epochs, compiled graphs captured with aot_eager."""
    cfg = Config.fromfile(str(FAST))
    cfg.model.net = dict(type='cifar_resnet', depth=8, width=4)
    cfg.model.compile = dict(
        backend='aot_eager', dynamic=False, mark_steps=True
    )
    cfg.train_cfg.max_epochs = 2
    cfg.param_scheduler[0].update(T_max=2, end=2)
    cfg.optim_wrapper.update(warmup_epochs=1)
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].dataset.update(data_root=str(root), download=False)
        cfg[key].batch_size = 4
    cfg.test_dataloader = cfg.test_evaluator = cfg.test_cfg = None
    cfg.default_hooks.checkpoint.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    cfg.resume = resume
    if kill_after:
        cfg.custom_hooks = list(cfg.custom_hooks) + [
            dict(type='KillAfterEpoch', epoch=kill_after)
        ]
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def test_fast_config_trains_and_resumes_exactly(cifar10_root, tmp_path):
    """Two epochs end to end (bf16 autocast on the CPU, compiled network,
    device data, validation at the end); a run killed after epoch 1 and
    resumed ends bit-identical to the uninterrupted one."""
    from tests.classification.test_resume_exact import (  # noqa: F401
        KillAfterEpoch,  # registers the hook
    )

    torch._dynamo.reset()
    full = run_fast(cifar10_root, tmp_path / 'full')
    assert full.model.mark_steps
    assert full.optim_wrapper.cast_dtype == torch.bfloat16
    metrics = full.message_hub.get_scalar('val/accuracy/top1')
    assert 0 <= metrics.current() <= 100  # validated after the last epoch
    run_fast(cifar10_root, tmp_path / 'half', kill_after=1)
    assert not (tmp_path / 'half' / 'epoch_2.pth').exists()
    resumed = run_fast(cifar10_root, tmp_path / 'half', resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    oa, ob = full.optim_wrapper, resumed.optim_wrapper
    assert oa.core.num_steps == ob.core.num_steps == 10
    assert torch.equal(oa.selection_counts(), ob.selection_counts())
    assert int(oa.selection_counts().sum()) == 20 + 10
    torch._dynamo.reset()


def test_device_batch_labels_are_used_as_they_are(cifar10_root):
    """The SAM step's per-batch stacking hands on the device batch's label
    tensor itself; rows of a subset give the same labels."""
    from tasks.classification.classifier import stack_labels

    batch = next(iter(build_loader(FAST, cifar10_root, batch_size=8)))
    samples = batch['data_samples']
    assert stack_labels(samples) is samples.gt_labels
    rows = [samples[i] for i in (5, 1, 2)]
    assert torch.equal(stack_labels(rows), samples.gt_labels[[5, 1, 2]])

"""Every config in configs/classification builds (model, dataset on fixture
data, optim wrapper) and runs two training iterations; one config runs end to
end through mmengine's Runner (train, checkpoint, resume, test)."""

import copy
from itertools import islice
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.utils import import_modules_from_strings

import tasks.classification  # noqa: F401
from ausam_tasks.engine import (
    AUSAMOptimWrapper,
    KSAMOptimWrapper,
    SAMOptimWrapper,
)
from ausam_tasks.engine.checkpoint import load_checkpoint_file
from tasks.classification.registry import MODELS

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'classification'
CONFIGS = sorted(CONFIG_DIR.glob('*.py'))
HEAVY = ('wrn28-10', 'pyramidnet110', 'resnet50')


def is_slow(path):
    """Two iterations of the big networks' extra alpha variants take a few
    seconds each on CPU: those run under `slow`; test_slow_configs_build
    still builds them in the fast suite."""
    return path.stem.startswith(HEAVY) and any(
        f'ausam-a{a}_' in path.stem for a in ('0.4', '0.6', '0.7')
    )


SLOW = [p for p in CONFIGS if is_slow(p)]


# Wrappers whose rho is SAM's (MSAM's rho is a different radius).
def shrink(cfg, roots, batch_size=4, resize_to=8):
    """Point the config at fixture data, tiny batches and a small input
    size."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[key]
        dl.update(
            batch_size=batch_size, num_workers=0, persistent_workers=False
        )
        ds = dl.dataset
        ds.data_root = str(roots[ds.type.replace('Device', '')])
        if 'CIFAR' in ds.type:
            ds.download = False
    cfg.model.data_preprocessor.resize_to = resize_to
    if cfg.model.get('compile'):
        # Inductor on CPU takes minutes: capture the graphs only, and mark
        # the CUDA-graph steps as on the device.
        cfg.model.compile = dict(
            backend='aot_eager', dynamic=False, mark_steps=True
        )
    return cfg


@pytest.fixture(scope='module')
def roots(cifar10_root, cifar100_root, tiny_imagenet_root):
    return {
        'CIFAR10': cifar10_root,
        'CIFAR100': cifar100_root,
        'TinyImageNet': tiny_imagenet_root,
    }


def test_the_config_grid_covers_the_paper_tables():
    names = {p.stem for p in CONFIGS}
    methods = [
        'sgd',
        'sam',
        'ausam-a0.4',
        'ausam-a0.5',
        'ausam-a0.6',
        'ausam-a0.7',
        'sam-random-a0.5',
    ]
    combos = [
        ('resnet18', 'cifar10'),
        ('resnet18', 'cifar100'),
        ('wrn28-10', 'cifar10'),
        ('wrn28-10', 'cifar100'),
        ('pyramidnet110-a270', 'cifar10'),
        ('pyramidnet110-a270', 'cifar100'),
        ('resnet18', 'tiny-imagenet'),
        ('resnet50', 'tiny-imagenet'),
        ('mobilenet-v1', 'tiny-imagenet-224'),
    ]
    want = {f'{m}_{meth}_1xb128_{d}' for m, d in combos for meth in methods}
    assert want <= names, sorted(want - names)


SAM_FAMILY = [
    p for p in CONFIGS if p.stem.split('_')[1] in ('sam', 'esam', 'ausam-a0.5')
]


@pytest.mark.parametrize('path', SAM_FAMILY, ids=[p.stem for p in SAM_FAMILY])
def test_sam_and_ausam_settings_follow_the_paper(path):
    """rho 0.05 on CIFAR-10 and 0.1 elsewhere; s_max 1.0 for PyramidNet-110
    and 0.5 otherwise (paper, Implementation Details). The other AUSAM
    variants inherit these from their AUSAM-0.5 sibling."""
    wrapper = Config.fromfile(str(path)).optim_wrapper
    assert wrapper.rho == (0.05 if path.stem.endswith('_cifar10') else 0.1)
    if 'ausam' in path.stem:
        assert (wrapper.s_min, wrapper.s_max) == (
            0.1,
            1.0 if 'pyramidnet' in path.stem else 0.5,
        )
        assert (wrapper.warmup_epochs, wrapper.init_epochs) == (30, 1)


VARIANTS = [
    p for p in CONFIGS if 'ausam-a0.5' not in p.stem and 'ausam-a' in p.stem
] + [p for p in CONFIGS if 'sam-random' in p.stem]


@pytest.mark.parametrize('path', VARIANTS, ids=[p.stem for p in VARIANTS])
def test_variants_differ_from_ausam_05_only_in_their_own_keys(path):
    sibling = path.with_name(
        path.name.replace(path.stem.split('_')[1], 'ausam-a0.5')
    )
    cfg = Config.fromfile(str(path)).to_dict()
    base = Config.fromfile(str(sibling)).to_dict()
    changed = {
        k
        for k in cfg['optim_wrapper']
        if cfg['optim_wrapper'][k] != base['optim_wrapper'].get(k)
    }
    if 'sam-random' in path.stem:
        assert changed == {'selector', 'warmup_epochs', 'init_epochs'}
        assert cfg['optim_wrapper']['selector'] == 'uniform'
    else:
        assert changed == {'alpha'}
        assert (
            path.stem.split('_')[1]
            == f'ausam-a{cfg["optim_wrapper"]["alpha"]}'
        )
    cfg.pop('optim_wrapper'), base.pop('optim_wrapper')
    assert cfg == base


@pytest.mark.parametrize(
    'path',
    [
        pytest.param(p, marks=pytest.mark.slow) if is_slow(p) else p
        for p in CONFIGS
    ],
    ids=[p.stem for p in CONFIGS],
)
def test_config_builds_and_runs_two_iterations(path, roots):
    build_and_run(path, roots, iterations=2)


@pytest.mark.parametrize('path', SLOW, ids=[p.stem for p in SLOW])
def test_slow_configs_build(path, roots):
    build_and_run(path, roots, iterations=0)


def build_and_run(path, roots, iterations):
    cfg = shrink(Config.fromfile(str(path)), roots)
    # Recipe checks against the paper.
    assert (
        cfg.train_cfg.max_epochs == 200
        and cfg.train_dataloader.batch_size == 4
    )
    assert Config.fromfile(str(path)).train_dataloader.batch_size == 128
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == (
        'SGD',
        0.1,
        0.9,
        5e-4,
    )
    assert cfg.model_wrapper_cfg.type == 'SAMDistributedDataParallel'
    if cfg.optim_wrapper.type == 'AUSAMOptimWrapper':
        cfg.optim_wrapper.init_epochs = 0  # select from the first step
    if 'start_epoch' in cfg.optim_wrapper:
        cfg.optim_wrapper.start_epoch = 0  # MESA: the KL term from step 0
    if 'mobilenet' in path.stem:
        assert (
            Config.fromfile(str(path)).model.data_preprocessor.resize_to == 224
        )
        cfg.model.data_preprocessor.resize_to = 32

    import_modules_from_strings(**cfg.custom_imports)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        expected = {
            'OptimWrapper': None,
            'SAMOptimWrapper': SAMOptimWrapper,
            'AUSAMOptimWrapper': AUSAMOptimWrapper,
        }.get(cfg.optim_wrapper.type, SAMOptimWrapper)
        if expected:
            assert isinstance(optim_wrapper, expected)
        if getattr(optim_wrapper, 'infobatch_pass', None):
            # What InfoBatchHook does in a Runner (test_infobatch.py runs
            # these configs through tools/train.py).
            loader.sampler.info.num_epochs = cfg.train_cfg.max_epochs
            optim_wrapper.infobatch = loader.sampler
        before = copy.deepcopy(model.net.fc.weight.detach())
        model.train()
        for data in islice(loader, iterations):
            assert data['data_samples'][0].sample_idx is not None
            log = model.train_step(data, optim_wrapper)
            assert torch.isfinite(log['loss'])
            if isinstance(
                optim_wrapper, (AUSAMOptimWrapper, KSAMOptimWrapper)
            ):
                want = round(cfg.optim_wrapper.alpha * 4) / 4
                assert float(log['sam_frac']) == pytest.approx(want)
    if iterations:
        assert not torch.equal(before, model.net.fc.weight)


@pytest.mark.parametrize(
    'dataset_base',
    ['cifar10_bs128_cpu-aug.py', 'tiny-imagenet-224_bs128_cpu-aug.py'],
)
def test_cpu_augmentation_bases_swap_in(dataset_base, roots, tmp_path):
    # A user config that swaps the dataset base for the CPU augmentation path.
    leaf = tmp_path / 'leaf.py'
    base = CONFIG_DIR.parent / '_base_' / 'datasets' / dataset_base
    leaf.write_text(
        f"_base_ = ['{CONFIG_DIR.parent}/_base_/models/resnet18.py', "
        f"'{base}']\n"
        'model = dict(data_preprocessor={{_base_.data_preprocessor}})\n'
    )
    cfg = Config.fromfile(str(leaf))
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].update(batch_size=2, num_workers=0, persistent_workers=False)
        ds = cfg[key].dataset
        ds.data_root = str(roots[ds.type])
        ds.pop('download', None)
    with DefaultScope.overwrite_default_scope('tasks.classification'):
        model = MODELS.build(cfg.model)
        batch = next(
            iter(Runner.build_dataloader(cfg.train_dataloader, seed=0))
        )
    assert batch['inputs'][0].dtype == torch.float32
    side = 224 if '224' in dataset_base else 32
    data = model.data_preprocessor(batch, True)
    assert data['inputs'].shape == (2, 3, side, side)
    assert model(**data, mode='loss')['loss'].shape == (2,)


def test_runner_trains_resumes_and_tests(roots, tmp_path):
    path = CONFIG_DIR / 'resnet18_ausam-a0.5_1xb128_cifar10.py'

    def make_cfg(max_epochs, **extra):
        cfg = shrink(Config.fromfile(str(path)), roots, batch_size=10)
        cfg.train_cfg.max_epochs = max_epochs
        cfg.param_scheduler[0].update(T_max=3, end=3)
        cfg.default_hooks.logger.interval = 1
        cfg.default_hooks.checkpoint.interval = 1
        cfg.work_dir = str(tmp_path / 'work')
        cfg.randomness = dict(seed=0)
        cfg.experiment_name = f'run{max_epochs}{len(extra)}'
        cfg.update(extra)
        return cfg

    runner = Runner.from_cfg(make_cfg(2))
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert 'val/accuracy/top1' in scalars
    assert float(scalars['train/sam_frac'].current()) == pytest.approx(
        0.5
    )  # epoch 2: past init_epochs
    ow = runner.optim_wrapper
    counts = ow.selection_counts()
    # epoch 1: all 20 samples; epoch 2: half
    assert int(counts.sum()) == 20 + 10
    # The checkpoint carries the score table (what resume restores).
    saved = load_checkpoint_file(str(tmp_path / 'work' / 'epoch_2.pth'))
    saved_table = saved['optimizer']['sharpness_aware']['scores']
    assert torch.equal(saved_table['count'], counts)
    idx = torch.arange(len(counts))
    seen = counts > 0
    torch.testing.assert_close(
        saved_table['value'][seen] / counts[seen],  # score_average='mean'
        ow.sample_scores(idx)[seen],
        rtol=0,
        atol=0,
    )

    resumed = Runner.from_cfg(make_cfg(3, resume=True))
    resumed.train()
    assert resumed.train_loop.epoch == 3 and resumed.iter == 6
    assert resumed.optim_wrapper.core.num_steps == 6
    # Resumed scores continue from the saved ones (counts only grow).
    assert int(resumed.optim_wrapper.selection_counts().sum()) == 30 + 10

    tester = Runner.from_cfg(
        make_cfg(3, load_from=str(tmp_path / 'work' / 'epoch_3.pth'))
    )
    metrics = tester.test()
    # By hand: top-1 of the loaded checkpoint over the 8 test images.
    model = tester.model.eval()
    correct = total = 0
    with torch.no_grad():
        for data in tester.test_dataloader:
            data = model.data_preprocessor(data, False)
            logits = model(data['inputs'], mode='tensor')
            labels = torch.stack(
                [s.gt_label for s in data['data_samples']]
            ).view(-1)
            correct += int((logits.argmax(1) == labels).sum())
            total += len(labels)
    assert total == 8
    assert metrics['accuracy/top1'] == pytest.approx(100 * correct / total)

"""Training-step time of mmpretrain's stock ResNet-18 (CIFAR) through the
SAM-ready adapter against the project's own ResNet-18, at the same batch.

Each step is the full ``model.train_step(batch, optim_wrapper)`` of an
mmengine run (data preprocessor, loss, wrapper), on 32x32 synthetic uint8
images, so data loading is excluded. Rows:

- ``stock SGD``: mmpretrain's unmodified ``ImageClassifier`` with SGD;
- ``adapter SGD / SAM / AUSAM-0.5``: ``SAMImageClassifier``, same network;
- ``own SGD / SAM / AUSAM-0.5``: the project's ``ImageClassifier`` with its
  ResNet-18 (CIFAR stem).

The adapter's cost is ``adapter SGD`` against ``stock SGD`` (same network,
same wrapper). Configurations are timed round-robin.

    python benchmarks/mmpretrain_step_time.py --threads 2 --batch-size 32
"""

import argparse
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.optim import build_optim_wrapper
from mmpretrain.datasets.transforms import PackInputs
from mmpretrain.registry import MODELS
from timing import device_name, time_round_robin

import ausam_tasks.mmpretrain  # noqa: F401
import tasks.classification  # noqa: F401
from tasks.classification import ClsDataSample
from tasks.classification.registry import MODELS as OWN_MODELS

MEAN = [125.307, 122.961, 113.8575]
STD = [51.5865, 50.847, 51.255]
SGD = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4)
WRAPPERS = {
    'SGD': dict(type='OptimWrapper'),
    'SAM': dict(type='SAMOptimWrapper', rho=0.05),
    'AUSAM-0.5': dict(type='AUSAMOptimWrapper', alpha=0.5, init_epochs=0),
}


def stock_model(kind):
    return MODELS.build(
        dict(
            type=kind,
            backbone=dict(type='ResNet_CIFAR', depth=18, out_indices=(3,)),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=10,
                in_channels=512,
                loss=dict(type='CrossEntropyLoss'),
            ),
            data_preprocessor=dict(num_classes=10, mean=MEAN, std=STD),
        )
    )


def own_model():
    return OWN_MODELS.build(
        dict(
            type='ImageClassifier',
            net=dict(type='resnet18', num_classes=10),
            data_preprocessor=dict(
                type='ClsDataPreprocessor', mean=MEAN, std=STD
            ),
        )
    )


def batches(n):
    """The same images and labels in mmpretrain's and the project's
    formats."""
    rng = np.random.default_rng(0)
    pack = PackInputs()
    packed = [
        pack(
            dict(
                img=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                gt_label=i % 10,
                sample_idx=i,
                img_shape=(32, 32),
            )
        )
        for i in range(n)
    ]
    theirs = dict(
        inputs=torch.stack([p['inputs'] for p in packed]),
        data_samples=[p['data_samples'] for p in packed],
    )
    own = []
    for i in range(n):
        s = ClsDataSample(metainfo=dict(sample_idx=i))
        s.gt_label = i % 10
        own.append(s)
    return theirs, dict(inputs=list(theirs['inputs']), data_samples=own)


def step_fn(model, wrapper, batch):
    torch.manual_seed(0)
    ow = build_optim_wrapper(model, dict(wrapper, optimizer=SGD))
    model.train()

    def step():
        model.train_step(batch, ow)

    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument(
        '--out', default='work_dirs/benchmarks/mmpretrain_step_time_cpu.json'
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    theirs, own = batches(args.batch_size)
    steps = {
        'stock SGD': step_fn(
            stock_model('ImageClassifier'), WRAPPERS['SGD'], theirs
        )
    }
    for name, wrapper in WRAPPERS.items():
        steps[f'adapter {name}'] = step_fn(
            stock_model('SAMImageClassifier'), wrapper, theirs
        )
        steps[f'own {name}'] = step_fn(own_model(), wrapper, own)
    times = time_round_robin(
        steps, args.warmup, args.repeats, torch.device('cpu')
    )
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f'\nResNet-18 (CIFAR), batch {args.batch_size}, '
        f'{args.threads} threads, {device_name(torch.device("cpu"))}\n'
    )
    print('| method | mmpretrain + adapter (ms) | own (ms) | adapter / own |')
    print('| --- | ---: | ---: | ---: |')
    for name in WRAPPERS:
        a, o = med[f'adapter {name}'], med[f'own {name}']
        print(f'| {name} | {1000 * a:.0f} | {1000 * o:.0f} | {a / o:.3f} |')
    overhead = med['adapter SGD'] / med['stock SGD'] - 1
    print(
        f'\nstock ImageClassifier SGD: {1000 * med["stock SGD"]:.0f} ms; '
        f'the adapter adds {100 * overhead:+.1f}% on the same network'
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            dict(
                date=datetime.now(timezone.utc).isoformat(timespec='minutes'),
                torch=torch.__version__,
                device=device_name(torch.device('cpu')),
                batch_size=args.batch_size,
                threads=args.threads,
                median_s=med,
                times_s=times,
                adapter_overhead=overhead,
            ),
            indent=1,
        )
    )


if __name__ == '__main__':
    main()

"""A custom model, dataset, collate and data preprocessor trained with SAM and
AUSAM through mmengine's Runner: everything a model of your own needs.

    python examples/custom_model.py [--work-dir DIR]
"""

import argparse

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch import nn

from ausam_tasks.engine import SAMTrainStepMixin


class Blobs(torch.utils.data.Dataset):
    """Two Gaussian blobs in 8 dimensions. Each item carries its own index
    as ``sample_idx``: AUSAM keeps one score per dataset sample."""

    def __init__(self, n=256, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.x = torch.randn(n, 8, generator=g) + 2.0 * self.y[:, None]

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        sample = BaseDataElement(metainfo=dict(sample_idx=i), label=self.y[i])
        return dict(inputs=self.x[i], data_samples=sample)


class StackInputs(BaseDataPreprocessor):
    """mmengine's default collate gives a list of inputs: stack them, so
    the SAM step can take any subset of the batch by position."""

    def forward(self, data, training=False):
        data = super().forward(data, training)  # to the model's device
        data['inputs'] = torch.stack(data['inputs'])
        return data


class MLP(SAMTrainStepMixin, BaseModel):  # the mixin goes first
    def __init__(self):
        super().__init__(data_preprocessor=StackInputs())
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.net(inputs)
        if mode == 'tensor':
            return logits
        labels = torch.stack([s.label for s in data_samples])
        if mode == 'loss':  # one loss per sample: shape (B,), no reduction
            return {'loss': F.cross_entropy(logits, labels, reduction='none')}
        return [  # mode='predict'
            BaseDataElement(pred=p, label=t)
            for p, t in zip(logits.argmax(1), labels)
        ]


def train(optim_wrapper: dict, work_dir: str, epochs: int = 3) -> Runner:
    runner = Runner(
        model=MLP(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=Blobs(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=32,
        ),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9), **optim_wrapper
        ),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=4)),
        randomness=dict(seed=0),
    )
    runner.train()
    return runner


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--work-dir', default='work_dirs/custom_model')
    args = p.parse_args(argv)
    for name, wrapper in (
        ('sam', dict(type='SAMOptimWrapper', rho=0.05)),
        ('ausam', dict(type='AUSAMOptimWrapper', alpha=0.5, num_samples=256)),
    ):
        model = train(wrapper, f'{args.work_dir}/{name}').model
        data = Blobs(seed=1)
        acc = (model(data.x).argmax(1) == data.y).float().mean().item()
        print(f'{name}: accuracy on fresh blobs {100 * acc:.1f}%')


if __name__ == '__main__':
    main()

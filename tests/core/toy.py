"""A tiny model, dataset and runner config that follow the SAM protocol."""

import copy

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.registry import DATASETS, MODELS
from mmengine.structures import BaseDataElement
from torch import nn
from torch.utils.data import Dataset

from ausam_tasks.engine import SAMTrainStepMixin


@MODELS.register_module()
class ToyPreprocessor(BaseDataPreprocessor):
    def forward(self, data, training=False):
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            inputs = torch.stack(list(inputs))
        return dict(inputs=inputs.float(), data_samples=data['data_samples'])


@MODELS.register_module()
class ToyNet(SAMTrainStepMixin, BaseModel):
    """conv - BN - relu - pool - linear: small enough for exact checks."""

    def __init__(self, num_classes=3, bn=True, scalar_loss=False):
        super().__init__(data_preprocessor=ToyPreprocessor())
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4) if bn else nn.Identity()
        self.fc = nn.Linear(4, num_classes)
        self.scalar_loss = scalar_loss

    def logits(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.logits(inputs)
        if mode == 'tensor':
            return logits
        labels = torch.stack([s.label for s in data_samples])
        if mode == 'loss':
            loss = F.cross_entropy(logits, labels, reduction='none')
            return {
                'loss_cls': loss.mean() if self.scalar_loss else loss,
                'acc': (logits.argmax(1) == labels).float().mean(),
            }
        out = []
        for s, p in zip(data_samples, logits.argmax(1)):
            s = copy.copy(s)
            s.pred = p
            out.append(s)
        return out


def make_sample(i, x, y):
    return dict(
        inputs=x,
        data_samples=BaseDataElement(
            metainfo=dict(sample_idx=i), label=torch.tensor(y)
        ),
    )


@DATASETS.register_module()
class ToyDataset(Dataset):
    """Gaussian blobs, one per class; index i is sample_idx i."""

    def __init__(self, size=64, num_classes=3, seed=0, with_idx=True):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, num_classes, (size,), generator=g)
        centers = torch.randn(num_classes, 2, 1, 1, generator=g) * 2
        self.x = centers[self.y] + torch.randn(size, 2, 6, 6, generator=g)
        self.with_idx = with_idx
        self.metainfo = dict(classes=tuple(range(num_classes)))

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        s = make_sample(i, self.x[i], int(self.y[i]))
        if not self.with_idx:
            s['data_samples'] = BaseDataElement(label=s['data_samples'].label)
        return s


def batch(dataset, idx):
    """A collated batch of the given dataset indices (as a dataloader
    gives)."""
    items = [dataset[i] for i in idx]
    return dict(
        inputs=[it['inputs'] for it in items],
        data_samples=[it['data_samples'] for it in items],
    )


def runner_cfg(
    work_dir,
    optim_wrapper,
    max_epochs=2,
    batch_size=16,
    dataset_size=64,
    seed=0,
    **kwargs,
):
    cfg = dict(
        model=dict(type='ToyNet'),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dict(type='ToyDataset', size=dataset_size),
            sampler=dict(type='DefaultSampler', shuffle=True, seed=seed),
            collate_fn=dict(type='pseudo_collate'),
            batch_size=batch_size,
            num_workers=0,
        ),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=optim_wrapper,
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1),
        ),
        default_scope='mmengine',
        randomness=dict(seed=seed, deterministic=False),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        model_wrapper_cfg=dict(type='SAMDistributedDataParallel'),
        log_level='WARNING',
    )
    cfg.update(kwargs)
    return cfg


from mmengine.evaluator import BaseMetric  # noqa: E402
from mmengine.registry import METRICS  # noqa: E402


@METRICS.register_module()
class ToyAccuracy(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results += [float(s['pred'] == s['label']) for s in data_samples]

    def compute_metrics(self, results):
        return {'accuracy': 100 * sum(results) / len(results)}

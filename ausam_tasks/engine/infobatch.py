"""InfoBatch in mmengine: a sampler, the hook that links it to the optim
wrapper, and the LR schedule over shorter epochs.

    train_dataloader = dict(sampler=dict(type='InfoBatchSampler'))
    optim_wrapper = dict(type='SAMOptimWrapper', infobatch_pass='second')
    custom_hooks = [..., dict(type='InfoBatchHook')]
    default_hooks = dict(
        param_scheduler=dict(type='InfoBatchParamSchedulerHook'))

The core (scores, kept set, weights) is ``ausam_tasks.infobatch``.
"""

import difflib
import inspect
import math
from typing import Iterator, Optional

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.hooks import Hook, ParamSchedulerHook
from mmengine.registry import DATA_SAMPLERS, HOOKS
from torch.utils.data import Sampler

from ..exchange import gather_rows
from ..infobatch import InfoBatch
from .optim_wrapper import SAMOptimWrapper


@DATA_SAMPLERS.register_module()
class InfoBatchSampler(Sampler):
    """Each epoch, InfoBatch's kept set in a shuffled order (a function of
    seed, epoch and the scores, the same on every rank), padded to a
    multiple of the world size, then this rank's shard, as mmengine's
    ``DefaultSampler`` with ``round_up=True``.

    Args:
        dataset: the training dataset (its items carry ``sample_idx``).
        prune_ratio, delta: InfoBatch's (``ausam_tasks.infobatch``).
        num_epochs: the training length for annealing; None: the Runner's
            ``max_epochs`` (set by ``InfoBatchHook``).
        seed: None: a seed shared by the ranks, as mmengine's samplers.
    """

    def __init__(
        self,
        dataset,
        prune_ratio: float = 0.5,
        delta: float = 0.875,
        num_epochs: Optional[int] = None,
        seed: Optional[int] = None,
    ):
        self.rank, self.world_size = get_dist_info()
        check_sample_idx(dataset)
        self.dataset = dataset
        seed = sync_random_seed() if seed is None else seed
        self.info = InfoBatch(
            len(dataset), prune_ratio, delta, num_epochs, seed
        )
        self.epoch = 0
        # A resumed epoch starts at this position of the rank's shard.
        self.start, self._resume_at = 0, None
        self.consumed = 0  # samples of this epoch's shard trained on
        self._shard = (None, None)  # (the plan's kept tensor, the shard)

    @property
    def seed(self) -> int:
        return self.info.seed

    @seed.setter
    def seed(self, value: int) -> None:
        self.info.seed = int(value)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        at = self._resume_at
        self.start = at[1] if at is not None and at[0] == epoch else 0

    def shard(self) -> torch.Tensor:
        """This rank's indices of the epoch (all of them); made once per
        plan (the LR hook asks at every iteration)."""
        kept, _ = self.info.plan(self.epoch)
        if self._shard[0] is kept:
            return self._shard[1]
        total = math.ceil(len(kept) / self.world_size) * self.world_size
        padded = kept.repeat(math.ceil(total / max(len(kept), 1)))[:total]
        self._shard = (kept, padded[self.rank : total : self.world_size])
        return self._shard[1]

    def full_length(self) -> int:
        """Samples per rank in an unpruned epoch."""
        return math.ceil(len(self.info) / self.world_size)

    def __iter__(self) -> Iterator[int]:
        self.consumed = self.start
        return iter(self.shard()[self.start :].tolist())

    def __len__(self) -> int:
        return len(self.shard()) - self.start

    def loss_weights(self, sample_idx) -> torch.Tensor:
        """InfoBatch's loss weight of each dataset index of a batch."""
        _, weights = self.info.plan(self.epoch)
        return weights[torch.as_tensor(sample_idx).cpu().long()].float()

    def observe(self, sample_idx, losses: torch.Tensor) -> None:
        """New scores: every rank's (index, loss) pairs, so the ranks keep
        the same table and draw the same kept sets."""
        idx = torch.as_tensor(sample_idx).cpu().long()
        idx, rows = gather_rows(idx, losses.detach().float().cpu()[:, None])
        self.info.update(idx, rows[:, 0])

    def state_dict(self) -> dict:
        return dict(
            self.info.state_dict(), epoch=self.epoch, consumed=self.consumed
        )

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        epoch, consumed = state.pop('epoch'), state.pop('consumed')
        self.info.load_state_dict(state)
        self._resume_at = (epoch, consumed)
        self.set_epoch(epoch)


def check_sample_idx(dataset) -> None:
    """InfoBatch scores and weighs samples by dataset index: the first
    item must carry it as ``data_samples.sample_idx``."""
    item = dataset[0] if len(dataset) else None
    samples = item.get('data_samples') if isinstance(item, dict) else None
    value = getattr(samples, 'sample_idx', None)
    if value is None and hasattr(samples, 'get'):
        value = samples.get('sample_idx', None)
    if value is None:
        raise ValueError(
            f'InfoBatchSampler: the items of train_dataloader.dataset '
            f'({type(dataset).__name__}) carry no sample_idx, which '
            'InfoBatch scores and weighs samples by: use an mmengine '
            "BaseDataset and keep 'sample_idx' in the Pack transform's "
            'meta_keys'
        )


def infobatch_sampler(runner) -> InfoBatchSampler:
    loader = runner.train_dataloader
    sampler = getattr(loader, 'sampler', None)
    if not isinstance(sampler, InfoBatchSampler):
        sampler = getattr(getattr(loader, 'batch_sampler', None), 'sampler', 0)
    if not isinstance(sampler, InfoBatchSampler):
        raise TypeError(
            'InfoBatchHook needs train_dataloader.sampler='
            "dict(type='InfoBatchSampler'), got "
            f'{type(getattr(loader, "sampler", None)).__name__}'
        )
    return sampler


@HOOKS.register_module()
class InfoBatchHook(Hook):
    """Links the training loader's ``InfoBatchSampler`` to the optim wrapper
    (which weighs one pass's losses by it and reports them back as scores),
    sets its training length, and keeps its state in checkpoints: scores,
    the epoch's kept set and weights, and the position in the epoch, so a
    resume in the middle of an epoch continues it exactly."""

    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        sampler = infobatch_sampler(runner)
        wrapper = runner.optim_wrapper
        if not (
            isinstance(wrapper, SAMOptimWrapper)
            and wrapper.infobatch_pass is not None
        ):
            raise TypeError(
                'InfoBatchHook: the optim wrapper must weigh a pass by '
                "InfoBatch: type='PlainOptimWrapper' (SGD+Info) or "
                "'SAMOptimWrapper' with infobatch_pass='first' or 'second', "
                f'got {type(wrapper).__name__}'
                + (
                    ' without infobatch_pass'
                    if isinstance(wrapper, SAMOptimWrapper)
                    else ''
                )
            )
        if sampler.info.num_epochs is None:
            sampler.info.num_epochs = runner.max_epochs
        wrapper.infobatch = sampler

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        sampler = infobatch_sampler(runner)
        size = runner.train_dataloader.batch_size
        sampler.consumed = sampler.start + (batch_idx + 1) * size

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['infobatch'] = infobatch_sampler(runner).state_dict()

    def before_train_epoch(self, runner) -> None:
        # Also without DistSamplerSeedHook (default_hooks.sampler_seed).
        sampler = infobatch_sampler(runner)
        sampler.set_epoch(runner.epoch)
        kept = len(sampler.info.plan(runner.epoch)[0])
        total = len(sampler.info)
        runner.logger.info(
            f'InfoBatch: epoch {runner.epoch + 1} trains {kept} of {total} '
            f'samples ({total - kept} pruned)'
        )

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # load_from: weights only, InfoBatch starts afresh
        if 'infobatch' not in checkpoint:
            raise KeyError(
                'the checkpoint has no InfoBatch state (saved without '
                'InfoBatchHook): its scores and kept set are lost, so the '
                'run cannot continue as it was; start it afresh with '
                'load_from instead of resume'
            )
        infobatch_sampler(runner).load_state_dict(checkpoint['infobatch'])


@HOOKS.register_module()
class InfoBatchParamSchedulerHook(ParamSchedulerHook):
    """``ParamSchedulerHook`` for epochs that InfoBatch shortens: an
    iteration-based schedule (``convert_to_iter_based=True``) follows the
    training progress in epochs, not the iteration count. After batch b of
    an epoch of B batches it has taken e * L + round(L * b / B) steps, L
    the unpruned epoch's batches (the length the Runner converted the
    schedule with), so at every epoch boundary the values equal the unpruned
    run's and the schedule ends when training does. Epoch-based schedules
    step per epoch as usual."""

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        if runner.param_schedulers is None:
            return
        sampler = infobatch_sampler(runner)
        loader = runner.train_dataloader
        full, epoch_len = (
            _batches(n, loader.batch_size, loader.drop_last)
            for n in (sampler.full_length(), len(sampler.shard()))
        )
        done = (sampler.start // loader.batch_size) + batch_idx + 1
        target = runner.epoch * full + round(full * done / epoch_len)
        groups = runner.param_schedulers
        groups = groups.values() if isinstance(groups, dict) else [groups]
        for scheduler in (s for g in groups for s in g if not s.by_epoch):
            # _global_step counts every step taken (last_step only those
            # inside [begin, end)); both are in the scheduler's state_dict.
            for _ in range(target - scheduler._global_step):
                scheduler.step()


def _batches(samples: int, batch_size: int, drop_last: bool) -> int:
    n = samples // batch_size if drop_last else math.ceil(samples / batch_size)
    return max(n, 1)


def use_infobatch(cfg, prune_ratio: float = 0.5, delta: float = 0.875):
    """Add InfoBatch's sampler and hooks to an mmengine config (what the
    shipped ``*-info`` configs set); the optim wrapper's
    ``infobatch_pass`` stays the caller's."""
    cfg.train_dataloader.sampler = dict(
        type='InfoBatchSampler', prune_ratio=prune_ratio, delta=delta
    )
    cfg.default_hooks.param_scheduler = dict(
        type='InfoBatchParamSchedulerHook'
    )
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') == 'InfoBatchHook' for h in hooks):
        hooks.append(dict(type='InfoBatchHook'))
    cfg.custom_hooks = hooks
    return cfg


def check_infobatch_config(cfg) -> None:
    """InfoBatch's parts, checked together when the config is read: the
    sampler, the wrapper's ``infobatch_pass``, the hooks and the loop."""
    loader = cfg.get('train_dataloader') or {}
    sampler = loader.get('sampler') or {}
    ow = cfg.get('optim_wrapper') or {}
    uses_sampler = sampler.get('type') == 'InfoBatchSampler'
    hooks = [h.get('type') for h in cfg.get('custom_hooks') or []]
    weighs = ow.get('infobatch_pass') is not None
    if not (uses_sampler or weighs or 'InfoBatchHook' in hooks):
        return
    recipe = (
        "InfoBatch needs all of: train_dataloader.sampler=dict(type='"
        "InfoBatchSampler'), optim_wrapper.infobatch_pass='first' or "
        "'second', dict(type='InfoBatchHook') in custom_hooks and "
        "default_hooks.param_scheduler=dict(type='"
        "InfoBatchParamSchedulerHook') (see configs/classification/"
        'resnet18_sam-info_1xb128_cifar10.py)'
    )
    if not uses_sampler:
        raise ValueError(
            'InfoBatch replaces the training sampler, but train_dataloader.'
            f'sampler is {sampler.get("type")!r} (it would decide the order '
            'and the kept samples too). ' + recipe
        )
    if loader.get('batch_sampler') is not None:
        raise ValueError(
            'InfoBatch cannot be combined with train_dataloader.'
            f'batch_sampler={loader["batch_sampler"].get("type")!r}: the '
            'batch sampler would regroup the kept samples; remove it. '
            + recipe
        )
    loop = (cfg.get('train_cfg') or {}).get('type', 'EpochBasedTrainLoop')
    by_epoch = (cfg.get('train_cfg') or {}).get('by_epoch', True)
    if 'Epoch' not in str(loop) or not by_epoch:
        runs = f'type={loop!r}' if by_epoch else 'by_epoch=False'
        raise ValueError(
            f'InfoBatch prunes per epoch, but train_cfg has {runs}, a loop '
            'by iterations: use an epoch-based loop, train_cfg=dict('
            'by_epoch=True, max_epochs=...)'
        )
    keys = set(inspect.signature(InfoBatchSampler).parameters) - {'dataset'}
    for key in sorted(set(sampler) - keys - {'type'}):
        close = difflib.get_close_matches(key, sorted(keys), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        raise TypeError(
            f'train_dataloader.sampler: InfoBatchSampler has no setting '
            f'{key!r}{hint}; its settings: {", ".join(sorted(keys))}'
        )
    from ..infobatch import check_settings

    check_settings(
        sampler.get('prune_ratio', 0.5), sampler.get('delta', 0.875)
    )
    ps = (cfg.get('default_hooks') or {}).get('param_scheduler') or {}
    missing = [
        what
        for what, ok in (
            ('optim_wrapper.infobatch_pass', weighs),
            ('custom_hooks InfoBatchHook', 'InfoBatchHook' in hooks),
            (
                'default_hooks.param_scheduler InfoBatchParamSchedulerHook',
                ps.get('type') == 'InfoBatchParamSchedulerHook',
            ),
        )
        if not ok
    ]
    if missing:
        raise ValueError(f'InfoBatch: missing {missing}. ' + recipe)

"""Hooks: per-epoch logging of a sharpness-aware run, the method's state
fitted to the run, strict checkpoint loading, and random streams that
survive a resume."""

import random
import time
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook, LoggerHook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS  # root: any scope finds it

from .checkpoint import check_state_dict, state_dict_of
from .methods import AUSAMOptimWrapper
from .optim_wrapper import SAMOptimWrapper


@HOOKS.register_module()
class SharpnessAwareLoggerHook(Hook):
    """After each training epoch, log (once) its wall time, the fraction of
    samples the SAM passes trained on, and statistics of the AUSAM score
    table. Epochs are numbered from 1, as mmengine's checkpoints
    (``epoch_1.pth``).

    It also keeps a GPU step free of host reads: the SAM-family wrapper
    holds each step's log variables (loss, sam_frac, dlp_mean, ...) on the
    device and this hook hands them to the message hub in one read at each
    logger interval and epoch end, just before LoggerHook reads them (the
    logged numbers are the same).

    Args:
        progress_seconds: when no log line appeared for this long during
            training (slow CPU runs, long logging intervals), log a one-line
            progress report; 0 disables it.
        log_every_iter: None: hand the log variables over every iteration
            where the step runs on the CPU (free there), at the log
            interval where it runs on an accelerator; True: every iteration
            (a host sync per step on a GPU); False: at the log interval
            everywhere. Held values reach a by-iteration checkpoint's
            message hub only if it falls on a log iteration.
    """

    # Before LoggerHook (BELOW_NORMAL), which reads what the flush hands
    # over; after RuntimeInfoHook (VERY_HIGH).
    priority = 'NORMAL'

    def __init__(
        self,
        progress_seconds: float = 30.0,
        log_every_iter: Optional[bool] = None,
    ):
        if log_every_iter not in (None, True, False):
            raise ValueError(
                'SharpnessAwareLoggerHook log_every_iter must be None, '
                f'True or False, got {log_every_iter!r}'
            )
        self.progress_seconds = progress_seconds
        self.log_every_iter = log_every_iter

    def before_train(self, runner) -> None:
        logger = next(
            (h for h in runner.hooks if isinstance(h, LoggerHook)), None
        )
        self._log_interval = logger.interval if logger else None
        ow = runner.optim_wrapper
        if isinstance(ow, SAMOptimWrapper) and self.log_every_iter is not True:
            ow.defer_log_vars(on_cpu_too=self.log_every_iter is False)

    def _flush(self, runner) -> None:
        """Hand the held log variables to the message hub (one host
        read)."""
        ow = runner.optim_wrapper
        if not isinstance(ow, SAMOptimWrapper) or not ow.deferring_log_vars:
            return
        for row, k in ow.flush_log_vars_with_sizes():
            for key, value in row.items():
                runner.message_hub.update_scalar(f'train/{key}', value)
            if 'sam_frac' in row:
                self._seen += k
                self._trained += row['sam_frac'] * k

    def before_train_epoch(self, runner) -> None:
        self._start = self._last_line = time.perf_counter()
        self._trained = self._seen = 0

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ) -> None:
        if outputs and 'sam_frac' in outputs:
            # The update's samples: an accumulation cycle's, all batches.
            k = getattr(runner.optim_wrapper, 'last_update_size', None)
            if k is None:
                k = len(data_batch['data_samples']) if data_batch else 0
            self._seen += k
            self._trained += float(outputs['sam_frac']) * k
        now = time.perf_counter()
        done, total = batch_idx + 1, len(runner.train_dataloader)
        interval = self._log_interval
        if (
            done == total
            or (interval and done % interval == 0)
            or (interval and (runner.iter + 1) % interval == 0)
        ):
            self._flush(runner)  # LoggerHook logs here (and epoch ends)
            self._last_line = now
        elif (
            self.progress_seconds
            and now - self._last_line >= self.progress_seconds
        ):
            self._last_line = now
            rate = (now - self._start) / done
            runner.logger.info(
                f'epoch {runner.epoch + 1} [{done}/{total}] '
                f'{rate:.2f} s/iter, epoch ends in about '
                f'{rate * (total - done) / 60:.1f} min'
            )

    def after_train(self, runner) -> None:
        self._flush(runner)

    def after_train_epoch(self, runner) -> None:
        self._flush(runner)
        seconds = time.perf_counter() - self._start
        ow = runner.optim_wrapper
        epoch = runner.epoch + 1  # mmengine counts up after this hook
        parts = [f'epoch {epoch} took {seconds:.1f} s']
        # Per-epoch figures go to the visualizer (scalars.json, TensorBoard)
        # at the epoch's last iteration, not into the message hub, whose
        # train/ scalars are averaged into every iteration line.
        scalars = dict(epoch=epoch, epoch_time=seconds)
        if isinstance(ow, SAMOptimWrapper) and self._seen:
            frac = self._trained / self._seen
            parts.append(f'SAM passes used {100 * frac:.1f}% of the samples')
            scalars['epoch_sam_frac'] = frac
        if isinstance(ow, AUSAMOptimWrapper):
            st = ow.score_stats()
            parts.append(
                'scores: ' + ', '.join(f'{k}={v:.4g}' for k, v in st.items())
            )
        runner.logger.info('; '.join(parts))
        if runner.visualizer is not None:
            runner.visualizer.add_scalars(scalars, step=runner.iter)


@HOOKS.register_module()
class SharpnessAwareStateHook(Hook):
    """Fits the method's state to the run: sizes its per-sample tables
    (AUSAM's scores, SAF's outputs) to the training set before training,
    so an index outside it fails and the scored fraction is exact; runs the
    deferred finite-loss check at the logger's interval, at each epoch end
    and before every checkpoint is saved, so no checkpoint is written after
    a non-finite loss went unnoticed."""

    # After LoggerHook's interval is known; before CheckpointHook saves.
    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        ow = runner.optim_wrapper
        if not isinstance(ow, SAMOptimWrapper):
            return
        ow.fix_table_sizes(len(runner.train_dataloader.dataset))
        logger = next(
            (h for h in runner.hooks if isinstance(h, LoggerHook)), None
        )
        if logger is not None and logger.interval:
            ow.core.finite.every = logger.interval

    def _check(self, runner) -> None:
        if isinstance(runner.optim_wrapper, SAMOptimWrapper):
            runner.optim_wrapper.core.check_finite()

    def after_train_epoch(self, runner) -> None:
        self._check(runner)

    def after_train(self, runner) -> None:
        self._check(runner)

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        self._check(runner)


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Checks every checkpoint the Runner loads (``load_from``, resume,
    ``tools/test.py``) against the model before mmengine loads it
    non-strictly: with ``strict=True`` a missing, unexpected or mis-shaped
    key is an error naming the model, the counts and the first keys."""

    priority = 'VERY_HIGH'

    def __init__(self, strict: bool = True):
        self.strict = strict

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        source = 'the checkpoint'
        name = getattr(runner, '_load_from', None)
        if name:
            source = f'checkpoint {name!r}'
        state = state_dict_of(checkpoint, source)
        if getattr(runner, '_resume', False) and 'meta' not in checkpoint:
            raise ValueError(
                f'{source} holds only weights, without the training state '
                'a resume needs (meta, optimizer, schedulers): start a new '
                'run from it with load_from instead of --resume'
            )
        if self.strict:
            model = runner.model
            if is_model_wrapper(model):
                model = model.module
            meta = checkpoint.get('meta') or {}
            if meta.get('experiment_name'):
                source += f' (from run {meta["experiment_name"]})'
            check_state_dict(model, state, source)


def _stream_seed(seed: int, kind: int, count: int, rank: int) -> int:
    """A well-mixed 63-bit seed for one (kind, count, rank) position."""
    words = np.random.SeedSequence([seed, kind, count, rank]).generate_state(
        2, dtype=np.uint32
    )
    return int(words[0]) << 31 | int(words[1]) >> 1


@HOOKS.register_module()
class RandomStreamsHook(Hook):
    """Make every global random stream training draws from a function of
    (seed, epoch or iteration, rank), so a resumed run draws exactly what
    the uninterrupted run drew.

    mmengine restores the seed, epoch and iteration from a checkpoint (and
    the samplers' shuffles are functions of seed and epoch), but not the
    state of Python's, numpy's and torch's global generators, which
    on-device augmentation, dropout and the data pipeline use. This hook
    reseeds them at every epoch start (so the data loader's per-iterator
    worker seeds, drawn from torch, follow) and before every iteration.
    It also replaces mmengine's worker seeding, which gives every epoch's
    workers the same seeds, by torch's (base seed drawn per epoch).
    Workers that persist across epochs keep their streams; pipelines with
    random transforms need ``persistent_workers=False`` to resume exactly.
    The AUSAM selection has its own seeded stream in the optimizer state.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        self._seed = int(runner.seed) if runner.seed is not None else 0
        self._rank = get_rank()
        loader = runner.train_dataloader
        sampler = getattr(loader, 'sampler', None)
        own = (runner.cfg.get('train_dataloader') or {}).get('sampler') or {}
        if (
            runner.seed is not None
            and 'seed' not in own
            and not (runner.cfg.get('randomness') or {}).get('diff_rank_seed')
            and getattr(sampler, 'seed', None) not in (None, runner.seed)
        ):
            # Under randomness.seed=None the sampler got the fresh run's
            # seed when it was built; a resume then restores the
            # checkpoint's seed into the Runner only. Shuffle as the
            # checkpointed run did.
            sampler.seed = runner.seed
        if getattr(loader, 'num_workers', 0) > 0:
            loader.worker_init_fn = None

    def _reseed(self, kind: int, count: int) -> None:
        seed = _stream_seed(self._seed, kind, count, self._rank)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)  # also every CUDA device

    def before_train_epoch(self, runner) -> None:
        self._reseed(0, runner.epoch)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._reseed(1, runner.iter)

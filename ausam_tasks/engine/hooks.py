"""A hook that logs what a sharpness-aware epoch did."""

import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS  # root: any scope finds it

from .optim_wrapper import AUSAMOptimWrapper, SAMOptimWrapper


@HOOKS.register_module()
class SharpnessAwareLoggerHook(Hook):
    """After each training epoch, log its wall time, the fraction of samples
    the SAM passes trained on, and statistics of the AUSAM score table
    (sized to the training dataset before training starts)."""

    priority = 'BELOW_NORMAL'

    def before_train(self, runner) -> None:
        # The Runner knows the dataset size: fix the AUSAM score table to it,
        # so the logged scored fraction is exact and a wrong sample_idx fails.
        ow = runner.optim_wrapper
        if isinstance(ow, AUSAMOptimWrapper):
            ow.fix_score_table_size(len(runner.train_dataloader.dataset))

    def before_train_epoch(self, runner) -> None:
        self._start = time.perf_counter()
        self._trained = self._seen = 0

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ) -> None:
        if outputs and 'sam_frac' in outputs and data_batch is not None:
            k = len(data_batch['data_samples'])
            self._seen += k
            self._trained += float(outputs['sam_frac']) * k

    def after_train_epoch(self, runner) -> None:
        seconds = time.perf_counter() - self._start
        ow = runner.optim_wrapper
        parts = [f'epoch {runner.epoch} took {seconds:.1f} s']
        runner.message_hub.update_scalar('train/epoch_time', seconds)
        if isinstance(ow, SAMOptimWrapper) and self._seen:
            frac = self._trained / self._seen
            parts.append(f'SAM passes used {100 * frac:.1f}% of the samples')
            runner.message_hub.update_scalar('train/epoch_sam_frac', frac)
        if isinstance(ow, AUSAMOptimWrapper):
            st = ow.score_stats()
            parts.append(
                'scores: ' + ', '.join(f'{k}={v:.4g}' for k, v in st.items())
            )
        runner.logger.info('; '.join(parts))

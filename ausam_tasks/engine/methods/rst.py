"""mmengine wrapper of RST (``ausam_tasks.methods.rst``)."""

from mmengine.logging import MessageHub
from mmengine.registry import OPTIM_WRAPPERS

from ...methods.rst import RST
from ...sam import StepResult
from ..optim_wrapper import SAMOptimWrapper


@OPTIM_WRAPPERS.register_module()
class RSTOptimWrapper(SAMOptimWrapper):
    """RST (Zhao et al. 2022): each step a seeded Bernoulli trial picks a
    SAM step (probability p) or a plain base-optimizer step.

    Args:
        p_start: SAM probability at the start (the whole run if constant).
        p_end: SAM probability at the end ('linear' only; None: p_start).
        schedule: 'constant' or 'linear' in the training progress
            iter / max_iters read from mmengine's runtime info.
        seed: seed of the draws (one stream for all ranks).
        rho, adaptive, eta, dtype, loss_scale, **kwargs: as in
            SAMOptimWrapper.
    """

    def __init__(
        self,
        optimizer,
        p_start: float = 0.5,
        p_end=None,
        schedule: str = 'constant',
        seed: int = 0,
        **kwargs,
    ):
        self._rst_args = dict(
            p_start=p_start, p_end=p_end, schedule=schedule, seed=seed
        )
        super().__init__(optimizer, **kwargs)

    def _build_core(self, **kwargs) -> RST:
        return RST(self.optimizer, **kwargs, **self._rst_args)

    def _progress(self) -> float:
        """iter / max_iters; 0 outside a Runner (a linear schedule then
        stays at p_start, with the warning of ``_epoch``)."""
        hub = MessageHub.get_current_instance()
        it, max_iters = hub.get_info('iter'), hub.get_info('max_iters')
        if it is None or not max_iters:
            self._epoch()  # warns once
            return 0.0
        return it / max_iters

    def _run(self, closure, idx, model) -> StepResult:
        return self.core.step(
            closure,
            self._progress(),
            model=model,
            scaler=self._scaler(model),
            update=self.step,
        )

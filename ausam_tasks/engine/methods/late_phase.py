"""mmengine wrapper of late-phase SAM (``ausam_tasks.methods.late_phase``)."""

from mmengine.registry import OPTIM_WRAPPERS

from ...methods.late_phase import LatePhaseSAM
from ...sam import StepResult
from ..optim_wrapper import SAMOptimWrapper


@OPTIM_WRAPPERS.register_module()
class LatePhaseSAMOptimWrapper(SAMOptimWrapper):
    """Plain base-optimizer steps until ``start_epoch``, SAM from then on.

    Args:
        start_epoch: first (0-based) epoch of SAM; the epoch comes from
            mmengine's runtime info (fractional within an epoch).
        rho, adaptive, eta, dtype, loss_scale, **kwargs: as in
            SAMOptimWrapper.
    """

    def __init__(self, optimizer, start_epoch: float = 0, **kwargs):
        self._start_epoch = start_epoch
        super().__init__(optimizer, **kwargs)

    def _build_core(self, **kwargs) -> LatePhaseSAM:
        return LatePhaseSAM(
            self.optimizer, start_epoch=self._start_epoch, **kwargs
        )

    def _run(self, closure, idx, model) -> StepResult:
        return self.core.step(
            closure,
            self._epoch(),
            model=model,
            scaler=self._scaler(model),
            update=self.step,
        )

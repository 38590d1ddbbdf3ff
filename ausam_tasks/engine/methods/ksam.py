"""mmengine wrapper of K-SAM (``ausam_tasks.methods.ksam``)."""

from mmengine.registry import OPTIM_WRAPPERS

from ...methods.ksam import KSAM
from ..optim_wrapper import SAMOptimWrapper


@OPTIM_WRAPPERS.register_module()
class KSAMOptimWrapper(SAMOptimWrapper):
    """K-SAM (Ni et al. 2022): rank the batch by loss with a no-grad
    forward, then both SAM passes on the top n = round(alpha K) only.

    Args:
        alpha: fraction of the batch trained on.
        rho, adaptive, eta, dtype, loss_scale, **kwargs: as in
            SAMOptimWrapper.
    """

    def __init__(self, optimizer, alpha: float = 0.5, **kwargs):
        self._ksam_alpha = alpha
        super().__init__(optimizer, **kwargs)

    def _build_core(self, **kwargs) -> KSAM:
        return KSAM(self.optimizer, alpha=self._ksam_alpha, **kwargs)

"""mmengine wrapper of LookSAM (``ausam_tasks.methods.looksam``)."""

from mmengine.registry import OPTIM_WRAPPERS

from ...methods.looksam import LookSAM
from ..optim_wrapper import SAMOptimWrapper


@OPTIM_WRAPPERS.register_module()
class LookSAMOptimWrapper(SAMOptimWrapper):
    """LookSAM-k (Liu et al. 2022): a SAM step every ``k`` steps that stores
    the SAM gradient's component orthogonal to the plain gradient; one-pass
    steps in between that add it back, rescaled by alpha ||g|| / ||g_v||.

    Args:
        k: a full SAM step every k steps (k=1 is SAM).
        alpha: weight of the reused component.
        rho, adaptive, eta, dtype, loss_scale, **kwargs: as in
            SAMOptimWrapper (``clip_grad`` clips the update gradient).
    """

    def __init__(self, optimizer, k: int = 5, alpha: float = 0.7, **kwargs):
        self._looksam_args = dict(k=k, alpha=alpha)
        super().__init__(optimizer, **kwargs)

    def _build_core(self, **kwargs) -> LookSAM:
        return LookSAM(self.optimizer, **kwargs, **self._looksam_args)

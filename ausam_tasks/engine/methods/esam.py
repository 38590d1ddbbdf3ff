"""mmengine wrapper for ESAM (Du et al. 2022a)."""

from mmengine.registry import OPTIM_WRAPPERS

from ...methods.esam import ESAM
from ..optim_wrapper import SAMOptimWrapper


@OPTIM_WRAPPERS.register_module()
class ESAMOptimWrapper(SAMOptimWrapper):
    """ESAM: SAM with stochastic weight perturbation (a random ``beta`` of
    the weights perturbed, scaled by 1/beta) and sharpness-sensitive data
    selection (the second backward on the ``gamma`` of the batch whose
    loss rose most). See ``ausam_tasks.methods.esam.ESAM``.

    Args:
        beta: SWP probability of perturbing a weight, in (0, 1].
        gamma: SDS fraction of the batch in the second backward, in (0, 1].
        seed: seed of the SWP masks (drawn per (seed, step)).
        rho, adaptive, eta, dtype, loss_scale, clip_grad: as in
            SAMOptimWrapper.
    """

    def __init__(
        self, optimizer, beta: float = 0.6, gamma: float = 0.5, seed=0, **kw
    ):
        self._esam_args = dict(beta=beta, gamma=gamma, seed=seed)
        super().__init__(optimizer, **kw)

    def _build_core(self, **kwargs) -> ESAM:
        return ESAM(self.optimizer, **kwargs, **self._esam_args)

"""mmengine wrapper for Momentum-SAM (Becker et al. 2024)."""

from mmengine.registry import OPTIM_WRAPPERS

from ...methods.msam import MSAM
from ..optim_wrapper import SAMOptimWrapper


@OPTIM_WRAPPERS.register_module()
class MSAMOptimWrapper(SAMOptimWrapper):
    """Momentum-SAM: one forward/backward per step at w - rho v/||v||, v
    the base optimizer's momentum (SGD with momentum, Adam, AdamW). The
    model holds the unperturbed weights between steps, so validation and
    checkpoints see w. See ``ausam_tasks.methods.msam.MSAM``.

    Args:
        rho: perturbation radius (the paper uses 3 with SGD on CIFAR).
        dtype, loss_scale, clip_grad: as in SAMOptimWrapper.
    """

    def __init__(self, optimizer, rho: float = 3.0, **kwargs):
        for key in ('adaptive', 'eta'):
            if key in kwargs:
                raise ValueError(
                    f'MSAMOptimWrapper has no {key!r}: the perturbation '
                    'follows the momentum, not an (adaptive) gradient'
                )
        super().__init__(optimizer, rho=rho, **kwargs)

    def _build_core(self, rho, **unused) -> MSAM:
        return MSAM(self.optimizer, rho=rho)

    def _log_vars(self, result, extras, batch_size):
        log_vars = super()._log_vars(result, extras, batch_size)
        log_vars.pop('sam_frac', None)  # no subset: one pass on the batch
        return log_vars

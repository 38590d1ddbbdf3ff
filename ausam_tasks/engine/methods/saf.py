"""mmengine wrapper for SAF (Du et al. 2022b)."""

from typing import Optional

from mmengine.registry import OPTIM_WRAPPERS

from ...methods.saf import SAF
from ..optim_wrapper import SAMOptimWrapper, refuse_perturbation_keys


@OPTIM_WRAPPERS.register_module()
class SAFOptimWrapper(SAMOptimWrapper):
    """SAF: one pass per step; from ``start_epoch`` on each sample's loss
    gets the KL to its own outputs recorded ``lag`` epochs earlier. See
    ``ausam_tasks.methods.saf.SAF``.

    The model must support ``forward(..., mode='loss_and_outputs')`` and
    each data sample must carry its ``sample_idx``. The output table is
    saved in checkpoints.

    Args:
        num_samples: dataset size; None lets the output table grow.
        lag: E~, epochs between recording outputs and using them (>= 1).
        kl_weight: lambda, the weight of the KL term, >= 0.
        temperature: tau of the softened softmax, > 0.
        start_epoch: first (0-based) epoch with the KL term.
        dtype, loss_scale, clip_grad: as in SAMOptimWrapper.
    """

    def __init__(
        self,
        optimizer,
        num_samples: Optional[int] = None,
        lag: int = 3,
        kl_weight: float = 0.3,
        temperature: float = 5.0,
        start_epoch: int = 5,
        **kwargs,
    ):
        refuse_perturbation_keys(
            'SAFOptimWrapper',
            kwargs,
            'SAF does not perturb the weights (its sharpness term is '
            'the KL to past outputs)',
        )
        self._saf_args = dict(
            num_samples=num_samples,
            lag=lag,
            kl_weight=kl_weight,
            temperature=temperature,
            start_epoch=start_epoch,
        )
        super().__init__(optimizer, **kwargs)

    def _build_core(self, **unused) -> SAF:
        return SAF(self.optimizer, **self._saf_args)

    def _run(self, closure, idx, model):
        return self.core.step(
            closure,
            idx,
            epoch=float(int(self._epoch())),
            model=model,
            scaler=self._scaler(model),
            update=self.step,
        )

    def _log_vars(self, result, extras, batch_size):
        log_vars = super()._log_vars(result, extras, batch_size)
        log_vars.pop('sam_frac', None)  # no SAM pass
        return log_vars

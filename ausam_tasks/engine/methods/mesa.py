"""mmengine wrapper for MESA (Du et al. 2022b)."""

from mmengine.registry import OPTIM_WRAPPERS

from ...methods.mesa import MESA
from ..optim_wrapper import SAMOptimWrapper, refuse_perturbation_keys


@OPTIM_WRAPPERS.register_module()
class MESAOptimWrapper(SAMOptimWrapper):
    """MESA: one pass per step plus a forward of an EMA teacher, whose
    outputs enter each sample's loss through the trajectory KL from
    ``start_epoch`` on. See ``ausam_tasks.methods.mesa.MESA``.

    The model must support ``forward(..., mode='loss_and_outputs')``
    (per-sample outputs under ``'outputs'``), as the classification
    ``ImageClassifier`` does. The teacher is saved in checkpoints.

    Args:
        decay: EMA decay of the teacher per step, in [0, 1).
        kl_weight: lambda, the weight of the KL term, >= 0.
        temperature: tau of the softened softmax, > 0.
        start_epoch: first (0-based) epoch with the KL term.
        dtype, loss_scale, clip_grad: as in SAMOptimWrapper.
    """

    def __init__(
        self,
        optimizer,
        decay: float = 0.9995,
        kl_weight: float = 0.8,
        temperature: float = 5.0,
        start_epoch: float = 5,
        **kwargs,
    ):
        refuse_perturbation_keys(
            'MESAOptimWrapper',
            kwargs,
            'MESA does not perturb the weights (its sharpness term is '
            'the KL to the EMA teacher)',
        )
        self._mesa_args = dict(
            decay=decay,
            kl_weight=kl_weight,
            temperature=temperature,
            start_epoch=start_epoch,
        )
        super().__init__(optimizer, **kwargs)

    def _build_core(self, **unused) -> MESA:
        return MESA(self.optimizer, **self._mesa_args)

    def _run(self, closure, idx, model):
        def teacher_closure(positions=None, with_outputs=False):
            # The log's extras (e.g. accuracy) must come from the model's
            # own forward, not the teacher's.
            extras = getattr(closure, 'extras', None)
            kept = None if extras is None else dict(extras)
            out = closure(positions, with_outputs=with_outputs)
            if kept is not None:
                extras.clear()
                extras.update(kept)
            return out

        return self.core.step(
            closure,
            model,
            epoch=float(int(self._epoch())),
            scaler=self._scaler(model),
            update=self.step,
            teacher_closure=teacher_closure,
        )

    def _log_vars(self, result, extras, batch_size):
        log_vars = super()._log_vars(result, extras, batch_size)
        log_vars.pop('sam_frac', None)  # no SAM pass
        return log_vars

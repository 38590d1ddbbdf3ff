"""The model side of the protocol: hand the train step to SAM wrappers."""

from mmengine.model.wrappers import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS  # root: any scope finds it

from .optim_wrapper import SAMOptimWrapper
from .protocol import sam_train_step


class SAMTrainStepMixin:
    """Put before ``BaseModel`` in a model's bases. With a SAM-family optim
    wrapper the model builds the loss closure and the wrapper runs the
    multi-pass step; with any other wrapper ``BaseModel.train_step`` runs
    (the per-sample losses are averaged). A model that also answers
    ``forward(..., mode='loss_and_outputs')`` (per-sample outputs, which
    MESA and SAF need) sets ``sam_outputs_mode = True``."""

    sam_outputs_mode = False

    def train_step(self, data, optim_wrapper):
        if isinstance(optim_wrapper, SAMOptimWrapper):
            return sam_train_step(self, data, optim_wrapper)
        return super().train_step(data, optim_wrapper)


@MODEL_WRAPPERS.register_module()
class SAMDistributedDataParallel(MMDistributedDataParallel):
    """DDP whose train_step runs the SAM-family step through the DDP forward,
    so every pass's gradients are all-reduced (mmengine's own DDP wrapper
    re-implements train_step and would skip the model's)."""

    def __init__(self, module, device_ids=None, **kwargs):
        # mmengine passes device_ids=[LOCAL_RANK]; a CPU module (gloo) needs
        # None there.
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)

    def train_step(self, data, optim_wrapper):
        if isinstance(optim_wrapper, SAMOptimWrapper):
            return sam_train_step(
                self.module, data, optim_wrapper, forward_model=self
            )
        return super().train_step(data, optim_wrapper)

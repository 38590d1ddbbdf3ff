"""mmengine glue: the ``QuantizedClassifier`` model type and the calibration
hook.

``QuantizedClassifier`` is a builder registered in ``MODELS``: it builds the
float model from its config (e.g. the classification task's
``ImageClassifier``), optionally loads a full-precision checkpoint into it,
and quantizes its network in place. The result *is* that classifier (same
data preprocessor, per-sample losses, SAM/AUSAM train step), only with
fake-quantized layers, so float checkpoints, QAT checkpoints, ``resume`` and
every optim wrapper work unchanged.
"""

import re
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import nn

from ausam_tasks.engine.checkpoint import load_checkpoint_file

from .quantize import calibrate, is_calibrated, quantize_model, quantizers
from .registry import HOOKS, MODELS


def load_float_checkpoint(model: nn.Module, path: str) -> None:
    """Load a full-precision checkpoint (mmengine or plain state_dict) into
    the float ``model``; every key must match."""
    import os

    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'float_checkpoint {path!r} does not exist: train the full-'
            'precision model first (e.g. configs/classification/'
            'resnet18_sgd_1xb128_cifar10.py) or set model.float_checkpoint '
            'to its .pth file (None starts QAT from random weights; to test '
            'or resume a QAT checkpoint without the float one, pass '
            '--cfg-options model.float_checkpoint=None)'
        )
    ckpt = load_checkpoint_file(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise KeyError(
            f'float_checkpoint {path!r} does not fit the float model: '
            f'missing keys {missing[:5]}, unexpected keys {unexpected[:5]} '
            '(is it a checkpoint of the same architecture? A QAT checkpoint '
            'goes in load_from/resume instead)'
        )


def build_quantized_classifier(
    model: dict,
    w_bits: int = 4,
    a_bits: Optional[int] = 4,
    quantizer: str = 'minmax',
    first_last_bits: Optional[int] = 8,
    fold_bn: bool = False,
    act_momentum: float = 0.01,
    skip: Sequence[str] = (),
    perturb_quantizer_params: bool = False,
    float_checkpoint: Optional[str] = None,
    data_preprocessor: Optional[dict] = None,
    quantize_module: Optional[str] = 'net',
):
    """Build ``model`` (a float model config), load ``float_checkpoint`` into
    it, then fake-quantize it (see :func:`tasks.qat.quantize_model` for the
    quantization settings).

    Args:
        data_preprocessor: set on the float model config when given (so a
            config can pass its dataset's preprocessor here).
        quantize_module: attribute holding the network to quantize
            (``'net'`` for ``ImageClassifier``); None quantizes the whole
            model.
    """
    model = dict(model)
    if data_preprocessor is not None:
        model['data_preprocessor'] = data_preprocessor
    built = MODELS.build(model)
    if float_checkpoint:
        load_float_checkpoint(built, float_checkpoint)
    target = built
    if quantize_module:
        if not hasattr(built, quantize_module):
            raise AttributeError(
                f'QuantizedClassifier: {type(built).__name__} has no '
                f'attribute {quantize_module!r} to quantize; set '
                'quantize_module to the network attribute or None'
            )
        target = getattr(built, quantize_module)
    quantize_model(
        target,
        w_bits,
        a_bits,
        quantizer=quantizer,
        first_last_bits=first_last_bits,
        fold_bn=fold_bn,
        act_momentum=act_momentum,
        skip=skip,
        perturb_quantizer_params=perturb_quantizer_params,
    )
    return built


MODELS.register_module(
    name='QuantizedClassifier', module=build_quantized_classifier
)


@HOOKS.register_module()
class QATCalibrationHook(Hook):
    """Before training, set every quantizer's range (min/max observers) or
    step (LSQ) from ``num_batches`` training batches, without augmentation,
    BatchNorm in eval mode, no weight update.

    Skipped when every quantizer already has its state (resumed or loaded
    from a QAT checkpoint). Under data parallelism rank 0's result is
    broadcast so all ranks quantize identically.
    """

    priority = 'VERY_HIGH'

    def __init__(self, num_batches: int = 16):
        if num_batches < 1:
            raise ValueError(
                f'QATCalibrationHook num_batches must be >= 1, '
                f'got {num_batches}'
            )
        self.num_batches = num_batches

    def before_train(self, runner) -> None:
        model = (
            runner.model.module
            if is_model_wrapper(runner.model)
            else runner.model
        )
        if not any(True for _ in quantizers(model)):
            raise RuntimeError(
                'QATCalibrationHook: the model has no '
                'quantizers (use type="QuantizedClassifier")'
            )
        if is_calibrated(model):
            print_log(
                'QAT: quantizers already calibrated (checkpoint), '
                'skipping calibration',
                logger='current',
            )
            return

        def forward(m, batch):
            data = m.data_preprocessor(batch, training=False)
            m(**data, mode='tensor')

        n = calibrate(
            model, runner.train_dataloader, forward, self.num_batches
        )
        _broadcast_quantizer_state(model)
        print_log(
            f'QAT: calibrated quantizers on {n} batches', logger='current'
        )


def _broadcast_quantizer_state(model: nn.Module) -> None:
    from mmengine.dist import broadcast, get_world_size

    if get_world_size() <= 1:
        return
    for q in quantizers(model):
        for t in list(q.buffers(recurse=False)) + list(
            q.parameters(recurse=False)
        ):
            # float64 copy: bool/int8 buffers are not supported by every
            # backend, and these values are exact in float64.
            tmp = t.data.double()
            broadcast(tmp, 0)
            t.data.copy_(tmp)
        q.refresh_state_cache()

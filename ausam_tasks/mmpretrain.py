"""Stock mmpretrain classification configs with the SAM-family wrappers.

Three lines on top of any stock mmpretrain classification config (see
docs/mmpretrain.md)::

    custom_imports = dict(imports=['ausam_tasks.mmpretrain'])
    model = dict(type='SAMImageClassifier')  # or 'SAMTimmClassifier'
    optim_wrapper = dict(
        constructor='SAMOptimWrapperConstructor',
        sam=dict(type='AUSAMOptimWrapper', alpha=0.5))

``SAM<Classifier>`` is the stock classifier with the SAM-family train step
(``SAMTrainStepMixin``) and a loss mode that asks the stock head for
per-sample losses (``reduction_override='none'``); it adds no parameters, so
its checkpoints load into the stock config. ``SAMOptimWrapperConstructor``
builds the stock optimizer (with the config's ``paramwise_cfg``, or the
constructor named in ``base_constructor``) and wraps it in the ``sam``
wrapper; it maps mmpretrain's ``--amp`` (``AmpOptimWrapper``) to the
wrapper's own mixed precision.
"""

import copy
import warnings

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS
from mmpretrain.models.classifiers import ImageClassifier, TimmClassifier
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from torch import nn

from ausam_tasks.engine import SAMOptimWrapper, SAMTrainStepMixin
from ausam_tasks.engine.protocol import OUTPUTS_MODE

# Relative tolerance of the one-time check that the per-sample losses
# average to the head's own loss (bf16 autocast rounds the logits alike
# for both, so only the reduction order differs).
CHECK_RTOL = 1e-3

PER_SAMPLE_LOSSES = (
    "use a loss that takes reduction_override='none' and then returns one "
    "loss per sample, shape (B,) (mmpretrain's CrossEntropyLoss, "
    'LabelSmoothLoss, FocalLoss, AsymmetricLoss or SeesawLoss do), or keep '
    'the stock model type with a plain optim_wrapper (SGD, AdamW, ...)'
)


class PerSampleLossError(ValueError):
    """The head cannot give the per-sample losses the wrappers need."""


def _loss_name(module) -> str:
    loss = getattr(module, 'loss_module', None)
    return type(loss).__name__ if loss is not None else 'no loss_module'


class SAMReadyClassifier(SAMTrainStepMixin):
    """What the ``SAM<Classifier>`` variants add to a stock classifier.

    Loss mode returns the stock head's losses per sample (shape (B,)), as
    the SAM-family wrappers need; a plain optim wrapper averages them, so
    SGD and AdamW configs train as with the stock type. The first loss
    computed in training mode is checked once: its per-sample losses must
    average to the head's own (reduced) loss, else a ``PerSampleLossError``
    names the head, its loss and what to change.
    """

    _per_sample_checked = False

    # --- the classifier-specific parts ------------------------------------
    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _head_loss(self, logits, data_samples, **kwargs) -> dict:
        raise NotImplementedError

    def _loss_owner(self) -> nn.Module:
        """The module whose ``loss_module`` computes the loss."""
        raise NotImplementedError

    # --- the protocol -------------------------------------------------------
    def train_step(self, data, optim_wrapper):
        if isinstance(optim_wrapper, SAMOptimWrapper):
            check_sample_idx(data)
        return super().train_step(data, optim_wrapper)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        if mode not in ('loss', OUTPUTS_MODE):
            return super().forward(inputs, data_samples, mode)
        logits = self._logits(inputs)
        losses = self.per_sample_losses(logits, data_samples)
        if mode == OUTPUTS_MODE:
            losses['outputs'] = logits
        return losses

    def per_sample_losses(self, logits, data_samples) -> dict:
        """The head's losses of each sample, from the logits of the batch."""
        try:
            losses = self._head_loss(
                logits, data_samples, reduction_override='none'
            )
        except TypeError as err:
            if 'reduction_override' not in str(err):
                raise
            raise self._refuse('does not take reduction_override') from err
        n = logits.shape[0]
        for key, value in losses.items():
            if 'loss' in key and (
                not isinstance(value, torch.Tensor) or value.shape != (n,)
            ):
                shape = tuple(getattr(value, 'shape', ()))
                raise self._refuse(
                    f"returned '{key}' of shape {shape} for a batch of {n} "
                    "with reduction_override='none'"
                )
        if self.training and not self._per_sample_checked:
            self._check_average(logits, data_samples, losses)
        return losses

    def _check_average(self, logits, data_samples, losses) -> None:
        with torch.no_grad():
            stock = self._head_loss(logits.detach(), data_samples)
        for key, value in losses.items():
            if 'loss' not in key:
                continue
            mean = value.detach().float().mean()
            ref = stock[key].detach().float()
            if not torch.allclose(mean, ref, rtol=CHECK_RTOL, atol=1e-6):
                raise self._refuse(
                    f"gives per-sample '{key}' averaging {mean.item():.6g}, "
                    f'not its own batch loss {ref.item():.6g} (it weights '
                    'or normalises the batch another way)'
                )
        self._per_sample_checked = True

    def _refuse(self, why: str) -> PerSampleLossError:
        owner = self._loss_owner()
        where = (
            f'{type(self).__name__}'
            + (f' head {type(owner).__name__}' if owner is not self else '')
            + f' (loss {_loss_name(owner)})'
        )
        return PerSampleLossError(
            f'{where}: the loss {why}. The SAM-family optimizer wrappers '
            f'need one loss per sample: {PER_SAMPLE_LOSSES}.'
        )


def check_sample_idx(data) -> None:
    """Refuse a raw batch whose data samples lack ``sample_idx``, naming the
    transform that packs it."""
    samples = data.get('data_samples') if isinstance(data, dict) else None
    if not samples:
        return  # the protocol's own check names what is missing
    for i, sample in enumerate(samples):
        if sample.get('sample_idx', None) is None:
            raise KeyError(
                f'data sample {i} of the batch has no sample_idx, which the '
                'SAM-family wrappers key their per-sample state by. '
                "mmpretrain's PackInputs packs it by default: the "
                "pipeline's PackInputs(meta_keys=...) leaves it out; add "
                "'sample_idx' to its meta_keys (or drop meta_keys)."
            )


@MODELS.register_module()
class SAMImageClassifier(SAMReadyClassifier, ImageClassifier):
    """mmpretrain's ``ImageClassifier``, ready for the SAM-family wrappers:
    the same arguments and state-dict keys (see ``SAMReadyClassifier``)."""

    def _logits(self, inputs):
        return self.head(self.extract_feat(inputs))

    def _head_loss(self, logits, data_samples, **kwargs):
        if type(self.head).loss is not ClsHead.loss:
            # The head computes its logits inside loss() (e.g. a margin
            # head needs the labels): nothing here can reuse them.
            raise PerSampleLossError(
                f'{type(self).__name__} head {type(self.head).__name__} '
                'computes its loss from the features with its own loss() '
                '(not logits, then a loss module, as ClsHead does), so its '
                'per-sample losses are not available: the SAM-family '
                f'wrappers need them. Use a ClsHead-style head '
                '(LinearClsHead, VisionTransformerClsHead, ...), or keep '
                'the stock model type with a plain optim_wrapper.'
            )
        return self.head._get_loss(logits, data_samples, **kwargs)

    def _loss_owner(self):
        return self.head


@MODELS.register_module()
class SAMTimmClassifier(SAMReadyClassifier, TimmClassifier):
    """mmpretrain's ``TimmClassifier`` (needs timm), ready for the
    SAM-family wrappers: same arguments and state-dict keys."""

    def _logits(self, inputs):
        return self.model(inputs)

    def _head_loss(self, logits, data_samples, **kwargs):
        return self._get_loss(logits, data_samples, **kwargs)

    def _loss_owner(self):
        return self


# --- the optimizer wrapper ---------------------------------------------------

# What mmpretrain's --amp and this project's --amp turn optim_wrapper.type
# into, mapped to the SAM-family wrapper's own mixed precision.
AMP_TYPES = ('AmpOptimWrapper', 'AutocastOptimWrapper')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SAMOptimWrapperConstructor:
    """Build the config's optimizer as the stock config does, then wrap it
    in a SAM-family wrapper.

    ``optim_wrapper`` keys: ``sam=dict(type='AUSAMOptimWrapper', ...)``
    (any registered SAM-family wrapper and its settings), the stock
    ``optimizer``, ``paramwise_cfg``, ``clip_grad`` (kept), and
    ``base_constructor``: the constructor that builds the optimizer's
    parameter groups (default ``DefaultOptimWrapperConstructor``; name the
    stock config's own ``constructor`` here). ``type`` stays the stock
    ``OptimWrapper``; ``AmpOptimWrapper`` (mmpretrain's ``--amp``) gives
    the wrapper ``dtype='float16'`` with its loss scale on a GPU and
    ``'bfloat16'`` on a CPU, ``AutocastOptimWrapper`` its ``dtype``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None):
        cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        sam = cfg.pop('sam', None)
        if not isinstance(sam, dict) or 'type' not in sam:
            raise ValueError(
                'optim_wrapper.constructor=SAMOptimWrapperConstructor needs '
                "optim_wrapper.sam=dict(type='SAMOptimWrapper', ...) (or "
                'another SAM-family wrapper and its settings), got '
                f'sam={sam!r}'
            )
        if 'optimizer' not in cfg:
            raise ValueError(
                'optim_wrapper has no optimizer=dict(type=...) for '
                'SAMOptimWrapperConstructor to wrap'
            )
        optimizer = cfg.pop('optimizer')
        base = cfg.pop('base_constructor', 'DefaultOptimWrapperConstructor')
        settings = dict(sam)
        self.wrapper_cls = _sam_family_class(settings.pop('type'))
        self._amp(cfg.pop('type', 'OptimWrapper'), cfg, settings)
        for key, value in cfg.items():  # clip_grad and the like
            settings.setdefault(key, value)
        _dry_build(self.wrapper_cls, settings)
        self.settings = settings
        self.base = OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type=base,
                optim_wrapper_cfg=dict(
                    type='OptimWrapper', optimizer=optimizer
                ),
                paramwise_cfg=paramwise_cfg,
            )
        )

    @staticmethod
    def _amp(kind, cfg: dict, settings: dict) -> None:
        if kind == 'OptimWrapper' or kind is OptimWrapper:
            return
        if kind not in AMP_TYPES:
            raise ValueError(
                f'optim_wrapper.type={kind!r} with SAMOptimWrapperConstructor:'
                ' keep the stock OptimWrapper (AmpOptimWrapper from --amp '
                "is mapped to the SAM-family wrapper's dtype); the method "
                'goes in optim_wrapper.sam.type'
            )
        gpu = torch.cuda.is_available()
        dtype = cfg.pop('dtype', None)
        if kind == 'AmpOptimWrapper':
            dtype = dtype or ('float16' if gpu else 'bfloat16')
            scale = cfg.pop('loss_scale', 'dynamic')
            if dtype == 'float16':
                settings.setdefault('loss_scale', scale)
        settings.setdefault('dtype', dtype or 'bfloat16')
        if not gpu:
            print_log(
                f'{kind} on a CPU: the SAM-family wrapper runs bfloat16 '
                'autocast (fp16 needs a GPU)',
                logger='current',
            )

    def __call__(self, model: nn.Module) -> SAMOptimWrapper:
        plain = self.base(model)
        return self.wrapper_cls(
            optimizer=plain.optimizer, **copy.deepcopy(self.settings)
        )


def _sam_family_class(kind):
    cls = OPTIM_WRAPPERS.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(cls, type) and issubclass(cls, SAMOptimWrapper)):
        names = sorted(
            name
            for name, c in OPTIM_WRAPPERS.module_dict.items()
            if issubclass(c, SAMOptimWrapper)
        )
        raise ValueError(
            f'optim_wrapper.sam.type={kind!r} is not a SAM-family optimizer '
            f'wrapper; registered: {", ".join(names)}'
        )
    return cls


def _dry_build(cls, settings: dict) -> None:
    """Build the wrapper once around a stand-in parameter, so a misspelt or
    out-of-range setting fails with the wrapper's own message before any
    data is loaded."""
    stand_in = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            cls(stand_in, **copy.deepcopy(settings))
    except (TypeError, ValueError) as e:
        raise type(e)(f'optim_wrapper.sam ({cls.__name__}): {e}') from None


__all__ = [
    'PerSampleLossError',
    'SAMImageClassifier',
    'SAMOptimWrapperConstructor',
    'SAMReadyClassifier',
    'SAMTimmClassifier',
    'check_sample_idx',
]

"""The mmengine model around a plain classification network."""

from __future__ import annotations

from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import nn

from ausam_tasks.engine import SAMTrainStepMixin

from .data_sample import ClsDataSample
from .device_data import SampleRow
from .registry import MODELS

TORCH_COMPILE_KEYS = ('mode', 'backend', 'dynamic', 'fullgraph', 'options')
# This project's keys: ``mark_steps`` (None: on with CUDA graphs) and
# ``recompile_limit`` (raises dynamo's limit, never lowers it).
COMPILE_KEYS = TORCH_COMPILE_KEYS + ('mark_steps', 'recompile_limit')
CUDAGRAPH_MODES = ('reduce-overhead', 'max-autotune')


def check_compile(compile: Optional[dict]) -> Optional[dict]:
    """The settings of ``ImageClassifier(compile=...)``, checked when the
    model is built: the ``torch.compile`` arguments plus ``mark_steps`` and
    ``recompile_limit`` (see the class docstring)."""
    if compile is None or compile is False:
        return None
    if compile is True:
        return {}
    if not isinstance(compile, dict):
        raise TypeError(
            'ImageClassifier compile must be None, True or a dict of '
            f'torch.compile arguments {COMPILE_KEYS}, got {compile!r}'
        )
    unknown = sorted(set(compile) - set(COMPILE_KEYS))
    if unknown:
        raise ValueError(
            f'ImageClassifier compile has unknown keys {unknown}; use '
            f'torch.compile arguments among {COMPILE_KEYS}, e.g. '
            "compile=dict(mode='max-autotune-no-cudagraphs')"
        )
    limit = compile.get('recompile_limit')
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(
            'ImageClassifier compile recompile_limit must be a positive '
            f'int (graphs per network forward), got {limit!r}'
        )
    return dict(compile)


def uses_cudagraphs(compile_kwargs: dict) -> bool:
    """Whether these ``torch.compile`` settings capture CUDA graphs."""
    options = compile_kwargs.get('options') or {}
    return compile_kwargs.get('mode') in CUDAGRAPH_MODES or bool(
        options.get('triton.cudagraphs')
    )


def raise_recompile_limit(limit: int) -> None:
    """Let dynamo keep ``limit`` graphs per frame (process-wide; the
    setting was ``cache_size_limit`` before torch 2.6)."""
    cfg = torch._dynamo.config
    name = (
        'recompile_limit'
        if hasattr(cfg, 'recompile_limit')
        else ('cache_size_limit')
    )
    setattr(cfg, name, max(getattr(cfg, name), limit))


@MODELS.register_module()
class ImageClassifier(SAMTrainStepMixin, BaseModel):
    """``net`` maps images to logits (any module or a registered constructor
    config).

    Modes: 'loss' -> ``{'loss': per-sample CE of shape (B,)}`` (the AUSAM
    protocol; mmengine averages it for plain optimizers), 'loss_and_outputs'
    -> the same plus ``'outputs'``: the logits (B, C), not detached (for
    wrappers that need per-sample outputs), 'predict' -> data samples with
    ``pred_label`` and ``pred_score``, 'tensor' -> logits.

    ``compile=dict(mode=..., backend=..., dynamic=..., fullgraph=...,
    options=...)`` compiles the network's forward with ``torch.compile``
    (in place, so state-dict keys stay the same); the training step itself
    stays eager. With CUDA graphs (``mode='reduce-overhead'``) every forward
    starts a new cudagraph step (``mark_steps``, default on with CUDA
    graphs), so each SAM pass may reuse the graph memory of the last one,
    and the logits are copied out of it. ``recompile_limit`` raises dynamo's
    limit for the graphs a run needs. See docs/gpu.md for the
    recompilations to expect.
    """

    def __init__(
        self,
        net: Union[dict, nn.Module],
        data_preprocessor: Optional[Union[dict, nn.Module]] = None,
        label_smoothing: float = 0.0,
        init_cfg: Optional[dict] = None,
        compile: Optional[dict] = None,
    ):
        compile_kwargs = check_compile(compile)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg
        )
        self.net = MODELS.build(net) if isinstance(net, dict) else net
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f'label_smoothing must be in [0, 1), got {label_smoothing}'
            )
        self.label_smoothing = label_smoothing
        self.mark_steps = False
        if compile_kwargs is not None:
            mark = compile_kwargs.pop('mark_steps', None)
            self.mark_steps = (
                uses_cudagraphs(compile_kwargs) if mark is None else bool(mark)
            )
            limit = compile_kwargs.pop('recompile_limit', None)
            if limit is not None:
                raise_recompile_limit(limit)
            # Only the network: the SAM-family step around it has
            # data-dependent control flow (selection, overflow skips).
            self.net.compile(**compile_kwargs)

    sam_outputs_mode = True  # forward(..., mode='loss_and_outputs')

    def forward(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List[ClsDataSample]] = None,
        mode: str = 'tensor',
    ):
        if self.mark_steps:
            # A SAM step runs two forwards (and backwards) before the
            # update; by the next forward nothing of the last one's graph
            # memory is used any more (gradients were cleared, the losses
            # are computed outside the graph), so each forward is a step.
            torch.compiler.cudagraph_mark_step_begin()
        logits = self.net(inputs)
        if self.mark_steps and mode != 'loss':
            # The next forward overwrites CUDA-graph outputs; logits that
            # are handed out (outputs, predictions) must outlive it.
            logits = logits.clone()
        if mode == 'tensor':
            return logits
        if mode in ('loss', 'loss_and_outputs'):
            if data_samples is None or len(data_samples) == 0:
                raise ValueError('loss mode needs data_samples with gt_label')
            labels = stack_labels(data_samples).to(logits.device)
            loss = F.cross_entropy(
                logits,
                labels,
                reduction='none',
                label_smoothing=self.label_smoothing,
            )
            if mode == 'loss_and_outputs':
                return {'loss': loss, 'outputs': logits}
            return {'loss': loss}
        if mode == 'predict':
            scores = logits.float().softmax(dim=1).detach()
            preds = scores.argmax(dim=1)
            if data_samples is None:
                data_samples = [ClsDataSample() for _ in range(len(logits))]
            for s, score, pred in zip(data_samples, scores, preds):
                s.pred_score = score
                s.pred_label = pred
            return data_samples
        raise ValueError(
            "mode must be 'loss', 'loss_and_outputs', 'predict' or 'tensor', "
            f'got {mode!r}'
        )

    def sam_stack_batch(self, data: dict) -> dict:
        """For the SAM-family step: the labels stacked once per batch (on
        the batch's device), so that each subset indexes one tensor instead
        of cutting the list of data samples on the host."""
        samples = data.get('data_samples')
        if not samples or isinstance(samples, torch.Tensor):
            return data
        return dict(data, data_samples=stack_labels(samples))


def stack_labels(data_samples) -> torch.Tensor:
    """Labels (B,) of a list of data samples; a stacked tensor as it is; a
    device batch (``BatchSamples``) carries them as one tensor already, a
    list of its rows as ints."""
    if isinstance(data_samples, torch.Tensor):
        return data_samples
    labels = getattr(data_samples, 'gt_labels', None)
    if labels is not None:
        return labels
    if isinstance(data_samples[0], SampleRow):
        return torch.tensor([s.label for s in data_samples])
    return torch.stack([s.gt_label for s in data_samples])

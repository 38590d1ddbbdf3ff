"""The model side of the SAM-family step: data in, a closure out.

As in mmengine, the model prepares the data and computes the loss, the
optimizer wrapper owns the gradients. A SAM-family step needs the loss of
several subsets of one batch, so the model side hands the wrapper a closure
instead of a reduced loss:

    closure(positions=None, with_outputs=False) -> {'loss*': (n,) tensor}

``positions`` are rows of the batch (None: the whole batch); with
``with_outputs=True`` it returns ``(losses, outputs)``, the model's per-sample
outputs of shape (n, ...) from ``forward(..., mode='loss_and_outputs')``.
"""

from typing import Dict, Optional

import torch
from torch import nn

PROTOCOL = (
    'SAM-family optimizer wrappers run their own multi-pass train step. The '
    'model must (1) inherit ausam_tasks.engine.SAMTrainStepMixin before '
    'BaseModel, so its train_step hands a loss closure to the wrapper, (2) '
    "return per-sample loss vectors of shape (B,) under 'loss*' keys in loss "
    "mode, and (3) carry each sample's dataset index as "
    'data_sample.sample_idx. Under distributed training set '
    "model_wrapper_cfg=dict(type='SAMDistributedDataParallel'). See 'The "
    "model protocol' in README.md. A stock mmpretrain classifier needs no "
    "code: set custom_imports=dict(imports=['ausam_tasks.mmpretrain']) and "
    "model.type='SAMImageClassifier' (or 'SAMTimmClassifier'); see "
    'docs/mmpretrain.md.'
)

OUTPUTS_MODE = 'loss_and_outputs'


def sample_indices(data_samples) -> torch.Tensor:
    """Dataset indices of a batch, read from each data sample's metainfo."""
    if not isinstance(data_samples, (list, tuple)) or not data_samples:
        raise ValueError(
            'the batch has no data_samples list to read '
            'sample_idx from. ' + PROTOCOL
        )
    idx = []
    for i, s in enumerate(data_samples):
        value = s.get('sample_idx', None) if hasattr(s, 'get') else None
        if value is None:
            raise KeyError(
                f'data sample {i} of the batch has no sample_idx: pack it '
                "into the metainfo (e.g. meta_keys=('sample_idx', ...) in the "
                'Pack transform). ' + PROTOCOL
            )
        idx.append(int(value))
    return torch.tensor(idx, dtype=torch.int64)


def subset_batch(data: dict, pos: Optional[torch.Tensor], size: int) -> dict:
    """The rows ``pos`` of every per-sample entry of a preprocessed batch.

    Tensors are indexed where they live; a per-sample list needs ``pos`` on
    the host, a stall on a GPU, which a model avoids by stacking such
    entries once per batch (``sam_stack_batch``, see ``sam_train_step``).
    """
    if pos is None:
        return data
    out, rows = {}, None
    for key, value in data.items():
        if (
            isinstance(value, torch.Tensor)
            and value.dim() > 0
            and value.shape[0] == size
        ):
            out[key] = value[pos.to(value.device)]
        elif isinstance(value, (list, tuple)) and len(value) == size:
            rows = pos.tolist() if rows is None else rows
            out[key] = [value[i] for i in rows]
        elif value is None:
            out[key] = None
        else:
            raise TypeError(
                f"cannot take a subset of batch entry '{key}' "
                f'({type(value).__name__}): the data preprocessor must '
                'return stacked tensors or per-sample lists'
            )
    return out


def per_sample_losses(out, size: int) -> Dict[str, torch.Tensor]:
    """The ``loss*`` entries of a model's loss-mode output, checked to be
    per-sample vectors."""
    if not isinstance(out, dict):
        raise TypeError(
            f'the model returned {type(out).__name__} in loss '
            'mode, expected a dict of losses. ' + PROTOCOL
        )
    losses = {}
    for key, value in out.items():
        if 'loss' not in key:
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"loss '{key}' is a {type(value).__name__}; "
                'return one tensor of shape (B,). ' + PROTOCOL
            )
        if value.dim() != 1 or value.shape[0] != size:
            raise ValueError(
                f"loss '{key}' has shape {tuple(value.shape)} for a batch of "
                f'{size}: it must be a per-sample vector of shape ({size},), '
                'not reduced. ' + PROTOCOL
            )
        losses[key] = value
    if not losses:
        raise ValueError(
            "the model's loss-mode output has no 'loss*' "
            f'entry (keys: {sorted(out)}). ' + PROTOCOL
        )
    return losses


def _no_outputs_mode(model: nn.Module, why: str) -> NotImplementedError:
    return NotImplementedError(
        f'{type(model).__name__} does not support forward(..., mode='
        f"'{OUTPUTS_MODE}') ({why}), which this optimizer wrapper needs for "
        "per-sample outputs: return the loss-mode dict plus an 'outputs' "
        'tensor of shape (B, ...) in that mode and set the class attribute '
        "sam_outputs_mode = True. See 'The model protocol' in README.md."
    )


class LossClosure:
    """The losses of any subset of one preprocessed batch.

    Each subset is cut once and reused (both SAM passes get the same
    positions tensor, the cache key, so the key needs no host read).
    ``extras`` collects the non-loss entries of the first forward (e.g.
    accuracy) for the wrapper's log.
    """

    def __init__(self, data: dict, size: int, net: nn.Module, context):
        self.data, self.size, self.net = data, size, net
        self.context = context  # the wrapper's optim_context (autocast)
        self.extras: Dict[str, torch.Tensor] = {}
        self._subsets = {}

    def __call__(
        self, positions: Optional[torch.Tensor] = None, with_outputs=False
    ):
        key = None if positions is None else id(positions)
        cached = self._subsets.get(key)
        if cached is None or cached[0] is not positions:
            # Keeping the tensor keeps its id from being reused.
            batch = subset_batch(self.data, positions, self.size)
            cached = self._subsets[key] = (positions, batch)
        n = self.size if positions is None else len(positions)
        mode = OUTPUTS_MODE if with_outputs else 'loss'
        with self.context():
            out = self.net(**cached[1], mode=mode)
        if with_outputs:
            out = dict(out) if isinstance(out, dict) else out
            outputs = self._outputs(out, n)
        losses = per_sample_losses(out, n)
        # The model's own training forward, not an eval-mode one of other
        # weights (MESA's teacher), gives the logged extras.
        if not self.extras and self._model().training:
            self.extras.update(
                {k: v for k, v in out.items() if k not in losses}
            )
        return (losses, outputs) if with_outputs else losses

    def _outputs(self, out, n: int) -> torch.Tensor:
        if not isinstance(out, dict) or 'outputs' not in out:
            raise _no_outputs_mode(self._model(), "no 'outputs' entry")
        outputs = out.pop('outputs')
        if not isinstance(outputs, torch.Tensor) or (
            outputs.dim() == 0 or outputs.shape[0] != n
        ):
            shape = getattr(outputs, 'shape', type(outputs).__name__)
            raise ValueError(
                f"the model's '{OUTPUTS_MODE}' outputs are {shape} for {n} "
                f'samples: return a tensor of shape ({n}, ...). ' + PROTOCOL
            )
        return outputs

    def _model(self) -> nn.Module:
        return getattr(self.net, 'module', self.net)


def sam_train_step(model, data, optim_wrapper, forward_model=None):
    """Preprocess a raw batch, read its dataset indices and hand the loss
    closure to a SAM-family optimizer wrapper.

    ``model`` is the BaseModel; ``forward_model`` the module the closure
    calls (the DDP wrapper, so the gradients are all-reduced). A model with
    a ``sam_stack_batch(data) -> data`` method gets the batch once, after
    the indices are read, to replace per-sample lists by device tensors
    that the subsets can index without a host read of the positions.
    """
    with optim_wrapper.optim_context(model):
        data = model.data_preprocessor(data, True)
    if not isinstance(data, dict):
        raise TypeError(
            'the data preprocessor must return a dict with '
            f'inputs and data_samples, got {type(data)}'
        )
    idx = sample_indices(data.get('data_samples'))
    if 'outputs' in optim_wrapper.core.needs and not getattr(
        model, 'sam_outputs_mode', False
    ):
        raise _no_outputs_mode(model, 'it does not set sam_outputs_mode')
    stack = getattr(model, 'sam_stack_batch', None)
    if callable(stack):
        data = stack(data)
    net = forward_model if forward_model is not None else model
    closure = LossClosure(
        data, len(idx), net, lambda: optim_wrapper.optim_context(model)
    )
    return optim_wrapper.update_params_with_closure(closure, idx, model)

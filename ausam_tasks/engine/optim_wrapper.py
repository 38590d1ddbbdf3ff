"""The mmengine optimizer wrapper of every SAM-family method.

It wraps any torch optimizer built from ``optimizer=dict(type=...)``, so a
config switches to a method by changing ``optim_wrapper.type``. The step
itself is the method's core (``ausam_tasks.sam``, ``ausam_tasks.methods``);
this module only connects it to mmengine: AMP, gradient clipping, logging,
checkpoint state. The model side (data, loss closure) is ``protocol.py``;
the registered methods are ``methods.py``.
"""

import contextlib
import difflib
import inspect
import math
import warnings
from typing import Dict, List, Optional

import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from torch import nn

from ..finite import FiniteCheck
from ..sam import SAM
from ..step import Chunks, StepContext, StepResult, no_sync_of
from .protocol import PROTOCOL

# SAM's settings of the perturbation, refused by a method without one.
PERTURBATION_KEYS = ('rho', 'adaptive', 'eta')


@OPTIM_WRAPPERS.register_module()
class SAMOptimWrapper(OptimWrapper):
    """The one mmengine wrapper of every SAM-family method: AMP, gradient
    clipping, logging and checkpoint state around the method's core
    (``method``, a ``ausam_tasks.step.Method`` class), which owns the
    step. Registered as itself it is SAM (or ASAM with ``adaptive=True``:
    ``rho``, ``adaptive``, ``eta``); every other method is a subclass that
    sets ``method`` (``methods.py``).

    Args:
        optimizer: the base optimizer (SGD, Adam, AdamW, ...).
        dtype: None (fp32), 'float16' or 'bfloat16' autocast.
        loss_scale: fp16 only: 'dynamic', a fixed float, or GradScaler kwargs.
        finite_check: when a non-finite loss is an error: 'every_step'
            (raise at once; a host read per pass), 'deferred' (recorded on
            the device, raised at the next check: every logger interval
            under SharpnessAwareStateHook, else every 10 steps) or 'auto'
            (every step on a CPU, deferred on a GPU). See
            ``ausam_tasks.finite.FiniteCheck``.
        accumulative_counts: mmengine's meaning: N loader batches make one
            update (the iteration count, LR schedule and logs count loader
            batches). The update is one step of the method on the N
            batches' concatenation: the cycle's loss closures are held
            until the N-th, then each pass runs over them one at a time.
        micro_batch_size: cut each loader batch into pieces of this size,
            run one at a time in each pass (a batch whose activations do
            not fit); None: whole batches.
        perturbation: under DDP, 'global' (eps from the all-reduced
            gradient) or 'local' (the first pass under ``no_sync``: each rank
            perturbs with its own gradient; the second pass is all-reduced).
            Without DDP both are the same step.
        infobatch_pass: with an ``InfoBatchSampler`` (and
            ``InfoBatchHook``): the pass whose loss InfoBatch weighs and
            scores, 'first' (at w) or 'second' (at w + eps). None: no
            InfoBatch. See docs/methods.md.
        clip_grad: OptimWrapper's.
        **settings: the method's own (``rho``, ``alpha``, ``k``, ...): the
            arguments of ``method``.
    """

    method: type = SAM

    def __init__(
        self,
        optimizer,
        dtype: Optional[str] = None,
        loss_scale='dynamic',
        finite_check: str = 'auto',
        clip_grad: Optional[dict] = None,
        accumulative_counts: int = 1,
        micro_batch_size: Optional[int] = None,
        perturbation: str = 'global',
        infobatch_pass: Optional[str] = None,
        **settings,
    ):
        _check_keys(type(self), settings)
        _check_infobatch_pass(type(self), infobatch_pass)
        _check_chunking(type(self), accumulative_counts, micro_batch_size)
        _check_perturbation(type(self), perturbation)
        if infobatch_pass is not None and accumulative_counts != 1:
            raise ValueError(
                f'{type(self).__name__}: infobatch_pass cannot be combined '
                'with accumulative_counts > 1: a cycle can span an epoch '
                "boundary (whose samples carry the other epoch's weights) "
                'and pruned epochs never reach the short last cycle; use '
                'micro_batch_size instead'
            )
        if perturbation == 'local' and dtype == 'float16':
            raise ValueError(
                f"{type(self).__name__}: perturbation='local' with "
                "dtype='float16': an overflow in one rank's own first pass "
                'would make that rank skip the step alone; use bfloat16'
            )
        self.micro_batch_size = micro_batch_size
        self.perturbation = perturbation
        self._pending: List[tuple] = []  # the accumulation cycle's batches
        self.infobatch_pass = infobatch_pass
        self.infobatch = None  # the sampler InfoBatchHook links
        super().__init__(
            optimizer,
            accumulative_counts=accumulative_counts,
            clip_grad=clip_grad,
        )
        if dtype not in (None, 'float32', 'float16', 'bfloat16'):
            raise ValueError(
                f"dtype must be None, 'float16' or 'bfloat16', got {dtype!r}"
            )
        self.cast_dtype = (
            None if dtype in (None, 'float32') else getattr(torch, dtype)
        )
        _check_loss_scale(loss_scale)
        self.loss_scale = loss_scale
        self.loss_scaler = None  # made on first use, on the model's device
        self._scaler_state = None
        self.core = self.method(self.optimizer, **settings)
        self.core.finite = FiniteCheck(finite_check)
        self._held_logs: Optional[List[dict]] = None  # see defer_log_vars
        self._held_sizes: List[int] = []  # samples of each held step
        self._hold_on_cpu = False
        self._warned_no_epoch = False
        self._warned_cpu_fp16 = False

    # --- the protocol -----------------------------------------------------
    def update_params(self, loss, step_kwargs=None, zero_kwargs=None):
        raise RuntimeError(
            f'{type(self).__name__}.update_params was called with a reduced '
            'loss, which means the model used the default one-pass '
            'train_step. ' + PROTOCOL
        )

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module):
        if self.cast_dtype is None:
            yield
            return
        device = _device_of(model)
        if (
            device.type == 'cpu'
            and self.cast_dtype is torch.float16
            and not self._warned_cpu_fp16
        ):
            warnings.warn(
                f"{type(self).__name__}: dtype='float16' on a CPU runs "
                "several times slower than fp32; use dtype='bfloat16' "
                '(no loss scaling needed) or None on a CPU'
            )
            self._warned_cpu_fp16 = True
        with torch.autocast(device_type=device.type, dtype=self.cast_dtype):
            yield

    def _scaler(self, model: nn.Module):
        if self.cast_dtype is not torch.float16:
            return None
        if self.loss_scaler is None:
            device = _device_of(model).type
            ls = self.loss_scale
            if ls == 'dynamic':
                scaler = torch.amp.GradScaler(device)
            elif isinstance(ls, dict):
                scaler = torch.amp.GradScaler(device, **ls)
            else:
                # A fixed scale, as mmengine's AmpOptimWrapper: overflowing
                # steps are still skipped, and step() sets the scale back
                # (torch refuses growth_factor=1 for a constant scaler).
                scaler = torch.amp.GradScaler(device, init_scale=float(ls))
            if self._scaler_state is not None:
                scaler.load_state_dict(self._scaler_state)
            self.loss_scaler = scaler
        return self.loss_scaler

    def step(self, **kwargs) -> None:
        """Base optimizer step with the method's final gradient; clipping
        and fp16 loss scaling as in mmengine's (Amp)OptimWrapper."""
        if self.loss_scaler is None:
            super().step(**kwargs)
            return
        if self.clip_grad_kwargs:
            self.loss_scaler.unscale_(self.optimizer)
            self._clip_grad()
        self.loss_scaler.step(self.optimizer, **kwargs)
        fixed = not isinstance(self.loss_scale, (str, dict))
        self.loss_scaler.update(float(self.loss_scale) if fixed else None)

    def step_context(self, sample_idx, model: nn.Module) -> StepContext:
        """What the method's step gets from mmengine: the runtime's epoch
        and progress, the model, the scaler and this wrapper's step."""
        epoch, progress = self._progress()
        weights = {}
        if self.infobatch_pass is not None:
            if self.infobatch is None:
                raise RuntimeError(
                    f'{type(self).__name__}: infobatch_pass='
                    f'{self.infobatch_pass!r} but no InfoBatch sampler is '
                    "linked: set train_dataloader.sampler=dict(type='"
                    "InfoBatchSampler') and add dict(type='InfoBatchHook') "
                    'to custom_hooks (docs/methods.md, InfoBatch)'
                )
            weights[self.infobatch_pass] = self.infobatch.loss_weights(
                sample_idx
            ).to(_device_of(model))
        return StepContext(
            sample_idx=sample_idx,
            epoch=epoch,
            progress=progress,
            model=model,
            scaler=self._scaler(model),
            update=self.step,
            weights=weights,
        )

    def update_params_with_closure(
        self, closure, sample_idx, model: nn.Module
    ) -> Dict[str, torch.Tensor]:
        """One step of the method; returns the log variables.

        ``closure(positions=None, with_outputs=False)`` gives the per-sample
        losses of the batch rows ``positions`` (None: all), see
        ``ausam_tasks.engine.protocol``; ``sample_idx`` are the batch's
        dataset indices; ``model`` is the BaseModel (not the DDP wrapper).
        Non-loss entries in ``closure.extras``, if any, are logged too.
        """
        if self.micro_batch_size and len(sample_idx) > self.micro_batch_size:
            closure = micro_batches(
                closure, len(sample_idx), self.micro_batch_size
            )
        self._pending.append((closure, sample_idx))
        self._inner_count += 1
        if not self.should_update():
            return {}  # the cycle's passes run at its last batch
        closure, sample_idx = cycle(self._pending)
        self._pending = []
        ctx = self.step_context(sample_idx, model)
        if self.perturbation == 'local':
            # Without DDP there is none: one rank's gradient is all.
            ctx.local_first_pass = no_sync_of(closure)
        result = self.core.step(closure, ctx)
        if self.infobatch_pass is not None and not result.skipped:
            self._score_infobatch(result, sample_idx)
        extras = getattr(closure, 'extras', {})
        log_vars = self._log_vars(result, extras, len(sample_idx))
        self.last_update_size = len(sample_idx)  # all the cycle's batches
        if self._held_logs is None or not (
            self._hold_on_cpu or _on_accelerator(log_vars)
        ):
            return log_vars
        self._held_logs.append(log_vars)
        self._held_sizes.append(len(sample_idx))
        return {}

    def _score_infobatch(self, result: StepResult, sample_idx) -> None:
        """InfoBatch's scores: the weighted pass's per-sample losses."""
        first = self.infobatch_pass == 'first'
        losses = result.loss_before if first else result.loss_after
        rows = result.positions
        idx = sample_idx if rows is None else sample_idx[rows.cpu()]
        self.infobatch.observe(idx, losses)

    # --- log variables without a host read per step -----------------------
    def defer_log_vars(self, on_cpu_too: bool = False) -> None:
        """Hold each step's log variables instead of returning them, for
        ``flush_log_vars``: mmengine's message hub reads every returned
        tensor on the host at once, which on a GPU stalls each step. Only
        steps whose log variables live on an accelerator are held, unless
        ``on_cpu_too``. SharpnessAwareLoggerHook calls this and flushes."""
        self._held_logs = [] if self._held_logs is None else self._held_logs
        self._hold_on_cpu = on_cpu_too

    @property
    def deferring_log_vars(self) -> bool:
        return self._held_logs is not None

    def flush_log_vars(self) -> List[Dict[str, float]]:
        """The held log variables, one dict of Python numbers per step in
        order, read from the device in one go; the hold is emptied."""
        return [row for row, _ in self.flush_log_vars_with_sizes()]

    def flush_log_vars_with_sizes(self) -> List[tuple]:
        """``flush_log_vars`` with the number of samples of each step
        (an accumulation cycle's, all its batches')."""
        rows, self._held_logs = self._held_logs or [], []
        sizes, self._held_sizes = self._held_sizes, []
        device = [
            v
            for row in rows
            for v in row.values()
            if isinstance(v, torch.Tensor) and v.device.type != 'cpu'
        ]
        # float64 holds every float32/bfloat16 value exactly: the numbers
        # are those .item() gives.
        read = iter(
            torch.stack([v.detach().double() for v in device]).tolist()
            if device
            else []
        )
        values = [
            {
                k: next(read)
                if isinstance(v, torch.Tensor) and v.device.type != 'cpu'
                else (v.item() if isinstance(v, torch.Tensor) else v)
                for k, v in row.items()
            }
            for row in rows
        ]
        return list(zip(values, sizes, strict=True))

    def _log_vars(
        self, result: StepResult, extras: dict, batch_size: int
    ) -> Dict[str, torch.Tensor]:
        log_vars = {k: v.mean() for k, v in result.losses.items()}
        log_vars['loss'] = result.loss_before.mean()
        for k, v in extras.items():
            if isinstance(v, torch.Tensor):
                log_vars[k] = v.detach().float().mean()
        if result.loss_after is not None:
            log_vars['loss_perturbed'] = result.loss_after.mean()
        if result.sam is not None:
            n = (
                batch_size
                if result.positions is None
                else len(result.positions)
            )
            # A plain one-pass step (RST, LookSAM, late-phase SAM) trains
            # no sample sharpness-aware.
            log_vars['sam_frac'] = torch.tensor(
                n / batch_size if result.sam else 0.0
            )
        log_vars.update(result.logs)
        if result.skipped:
            log_vars['skipped'] = torch.tensor(1.0)
        return log_vars

    def _progress(self) -> tuple:
        """(epoch, iter / max_iters) from mmengine's runtime info; the
        epoch is fractional within the epoch, so a warm-up may ramp per
        iteration. Outside a Runner: (0, 0), with a warning once."""
        hub = MessageHub.get_current_instance()
        epoch = hub.get_info('epoch')
        it, max_iters = hub.get_info('iter'), hub.get_info('max_iters')
        progress = it / max_iters if it is not None and max_iters else 0.0
        if epoch is None:
            if not self._warned_no_epoch:
                warnings.warn(
                    'no epoch in mmengine runtime info (not run by '
                    'a Runner?): the schedule counts epoch 0'
                )
                self._warned_no_epoch = True
            return 0.0, progress
        max_epochs = hub.get_info('max_epochs')
        if None in (it, max_iters, max_epochs) or max_epochs <= 0:
            return float(epoch), progress
        per_epoch = max_iters / max_epochs
        frac = (it - epoch * per_epoch) / per_epoch
        return float(epoch) + min(max(frac, 0.0), 0.999999), progress

    # --- per-sample state, for hooks ---------------------------------------
    def fix_table_sizes(self, num_samples: int) -> None:
        """Size the method's per-sample tables (AUSAM's scores, SAF's
        outputs) to the dataset; a no-op for a method without any, or when
        already sized."""
        fix = getattr(self.core, 'fix_size', None)
        if fix is not None:
            fix(num_samples)

    # --- checkpoints ------------------------------------------------------
    def state_dict(self) -> dict:
        # No checkpoint of weights trained past an unnoticed non-finite
        # loss, with or without SharpnessAwareStateHook.
        self.core.check_finite()
        state = super().state_dict()
        state['sharpness_aware'] = self.core.state_dict()
        if self.loss_scaler is not None:
            state['loss_scaler'] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        core = state_dict.pop('sharpness_aware', None)
        scaler = state_dict.pop('loss_scaler', None)
        if core is None:
            warnings.warn(
                f'{type(self).__name__}: the checkpoint has no '
                'sharpness-aware state (it was saved by another '
                'optimizer wrapper); the step counter'
                + (
                    ' and scores start'
                    if hasattr(self.core, 'table')
                    else ' starts'
                )
                + ' afresh'
            )
        else:
            self.core.load_state_dict(core)
        if scaler is not None:
            self._scaler_state = scaler
            if self.loss_scaler is not None:
                self.loss_scaler.load_state_dict(scaler)
        super().load_state_dict(state_dict)


def init_keys(cls) -> set:
    """The keyword settings ``cls(optimizer, ...)`` accepts, along its
    MRO, and its method's settings for a SAM-family wrapper."""
    keys = _own_init_keys(cls)
    method = getattr(cls, 'method', None)
    if isinstance(method, type):
        keys |= _own_init_keys(method)
    return keys - {'self', 'optimizer'}


def _own_init_keys(cls) -> set:
    """Keywords of ``cls.__init__`` and, while it passes ``**kwargs`` on,
    of its bases' along the MRO."""
    keys = set()
    for klass in cls.__mro__:
        if klass is object or '__init__' not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        keys |= {
            p.name
            for p in params
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return keys


def _check_keys(cls, kwargs: dict) -> None:
    """Report a misspelt setting against the SAM-family wrapper that got it
    (it would reach OptimWrapper.__init__ otherwise)."""
    valid = init_keys(cls)
    unknown = sorted(set(kwargs) - valid)
    for key in unknown:
        if key in PERTURBATION_KEYS and not issubclass(cls.method, SAM):
            raise ValueError(
                f'{cls.__name__} has no {key!r}: {cls.method.__name__} '
                'does not perturb the weights along the gradient (see its '
                'docs for what it does instead)'
            )
    if unknown:
        hints = {k: difflib.get_close_matches(k, valid, n=1) for k in unknown}
        hint = ''.join(
            f' ({k!r}: did you mean {v[0]!r}?)' for k, v in hints.items() if v
        )
        raise TypeError(
            f'{cls.__name__} got unknown setting(s) {unknown}{hint}; '
            'valid keys of optim_wrapper: optimizer, '
            + ', '.join(sorted(valid))
        )


def cycle(pending: List[tuple]):
    """(closure, sample indices) of an accumulation cycle's batches: one
    batch as it is, several as ``Chunks`` of their concatenation."""
    if len(pending) == 1:
        return pending[0]
    closures, idx = zip(*pending)
    return Chunks(list(closures), [len(i) for i in idx]), torch.cat(idx)


def micro_batches(closure, size: int, micro: int) -> Chunks:
    """One batch's closure as pieces of ``micro`` rows."""

    def rows_of(rows):
        cut = [None, None]  # (positions, rows[positions]): see Chunks.split

        def part(positions=None, **kwargs):
            if positions is None:
                return closure(rows, **kwargs)
            if cut[0] is not positions:  # one tensor for both passes
                cut[:] = positions, rows[positions.cpu()]
            return closure(cut[1], **kwargs)

        part.net = getattr(closure, 'net', None)
        part.extras = getattr(closure, 'extras', {})
        return part

    starts = range(0, size, micro)
    parts = [rows_of(torch.arange(a, min(a + micro, size))) for a in starts]
    return Chunks(parts, [min(micro, size - a) for a in starts])


def _check_chunking(cls, counts, micro) -> None:
    for name, value in (
        ('accumulative_counts', counts),
        ('micro_batch_size', micro),
    ):
        if value is None and name == 'micro_batch_size':
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f'{cls.__name__}: {name} must be an integer >= 1, got '
                f'{value!r}'
            )
    reason = cls.method.no_accumulation
    if reason and (counts > 1 or micro is not None):
        raise ValueError(
            f'{cls.__name__} does not take accumulative_counts > 1 or '
            f'micro_batch_size: {reason}. Use a batch that fits instead.'
        )


def _check_perturbation(cls, value) -> None:
    if value not in ('global', 'local'):
        raise ValueError(
            f"{cls.__name__}: perturbation must be 'global' or 'local', got "
            f'{value!r}'
        )
    if value not in cls.method.perturbations:
        raise ValueError(
            f"{cls.__name__} does not take perturbation='local': "
            f'{cls.method.local_refusal}'
        )


def _check_infobatch_pass(cls, value) -> None:
    if value is None:
        return
    passes = vars(cls.method).get('infobatch_passes', ())
    if not passes:
        raise ValueError(
            f'{cls.__name__} does not take infobatch_pass: InfoBatch weighs '
            'the loss of one pass of SAM (SAMOptimWrapper) or of the base '
            'optimizer (PlainOptimWrapper); '
            f'{cls.method.__name__} chooses or reuses samples by its own '
            "rule, which InfoBatch's weights would change"
        )
    if value not in passes:
        raise ValueError(
            f'{cls.__name__}: infobatch_pass must be one of {passes}, '
            f'got {value!r}'
        )


def _check_loss_scale(ls) -> None:
    fixed = isinstance(ls, (int, float)) and not isinstance(ls, bool)
    if ls == 'dynamic' or isinstance(ls, dict):
        return
    if not fixed or not math.isfinite(ls) or ls <= 0:
        raise ValueError(
            "loss_scale must be 'dynamic', a positive number (a fixed "
            f'scale) or a dict of GradScaler arguments, got {ls!r}'
        )


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """OptimWrapper whose forward runs under autocast without loss
    scaling: bf16 mixed precision on any device, the CPU included (mmengine's
    AmpOptimWrapper needs a GPU). ``--amp`` uses it on a CPU.

    Args:
        dtype: 'bfloat16' (the default) or 'float16' (no loss scaling:
            use AmpOptimWrapper for fp16 on a GPU).
        **kwargs: OptimWrapper's.
    """

    def __init__(self, optimizer, dtype: str = 'bfloat16', **kwargs):
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(
                f"AutocastOptimWrapper dtype must be 'bfloat16' or "
                f"'float16', got {dtype!r}"
            )
        super().__init__(optimizer, **kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module):
        with (
            super().optim_context(model),
            torch.autocast(
                device_type=_device_of(model).type, dtype=self.cast_dtype
            ),
        ):
            yield


def _on_accelerator(log_vars: dict) -> bool:
    return any(
        isinstance(v, torch.Tensor) and v.device.type != 'cpu'
        for v in log_vars.values()
    )


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device('cpu')

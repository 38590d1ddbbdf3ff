"""mmengine optimizer wrappers for SAM, ASAM and AUSAM.

They wrap any torch optimizer built from ``optimizer=dict(type=...)``, so a
config switches to them by changing ``optim_wrapper.type``. The step itself
is ``ausam_tasks.sam``; this module only connects it to mmengine: AMP,
gradient clipping, logging and checkpoint state. The model side (data, loss
closure) is ``protocol.py``.
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

from ..sam import AUSAM, SAM, FiniteCheck, StepResult
from ..selection import subset_size
from .protocol import PROTOCOL


@OPTIM_WRAPPERS.register_module()
class SAMOptimWrapper(OptimWrapper):
    """SAM (or ASAM with ``adaptive=True``) around a base optimizer.

    Args:
        optimizer: the base optimizer (SGD, Adam, AdamW, ...).
        rho: radius of the perturbation ball (Eq. 1).
        adaptive: ASAM's scale-invariant perturbation.
        eta: ASAM's offset in T = |w| + eta.
        dtype: None (fp32), 'float16' or 'bfloat16' autocast.
        loss_scale: fp16 only: 'dynamic', a fixed float, or GradScaler kwargs.
        finite_check: when a non-finite loss is an error: 'every_step'
            (raise at once; a host read per pass), 'deferred' (recorded on
            the device, raised at the next check: every logger interval
            under SharpnessAwareLoggerHook, else every 10 steps) or 'auto'
            (every step on a CPU, deferred on a GPU). See
            ``ausam_tasks.sam.FiniteCheck``.
        **kwargs: OptimWrapper's, e.g. ``clip_grad``.
    """

    def __init__(
        self,
        optimizer,
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
        dtype: Optional[str] = None,
        loss_scale='dynamic',
        finite_check: str = 'auto',
        **kwargs,
    ):
        _check_keys(type(self), kwargs)
        super().__init__(optimizer, **kwargs)
        if self._accumulative_counts != 1:
            raise ValueError(
                f'{type(self).__name__} does not support accumulative_counts'
                f'={self._accumulative_counts}: both SAM passes must see the '
                'same mini-batch. Increase the batch size instead.'
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
        self.core = self._build_core(rho=rho, adaptive=adaptive, eta=eta)
        self.core.finite = FiniteCheck(finite_check)
        self._held_logs: Optional[List[dict]] = None  # see defer_log_vars
        self._hold_on_cpu = False
        self._warned_no_epoch = False
        self._warned_cpu_fp16 = False

    def _build_core(self, **kwargs) -> SAM:
        return SAM(self.optimizer, **kwargs)

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
        """Base optimizer step with the gradient at w + eps (Eq. 3); clipping
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

    def update_params_with_closure(
        self, closure, sample_idx, model: nn.Module
    ) -> Dict[str, torch.Tensor]:
        """One sharpness-aware step; returns the log variables.

        ``closure(positions=None, with_outputs=False)`` gives the per-sample
        losses of the batch rows ``positions`` (None: all), see
        ``ausam_tasks.engine.protocol``; ``sample_idx`` are the batch's
        dataset indices; ``model`` is the BaseModel (not the DDP wrapper).
        Non-loss entries in ``closure.extras``, if any, are logged too.
        """
        result = self._run(closure, sample_idx, model)
        self._inner_count += 1
        extras = getattr(closure, 'extras', {})
        log_vars = self._log_vars(result, extras, len(sample_idx))
        if self._held_logs is None or not (
            self._hold_on_cpu or _on_accelerator(log_vars)
        ):
            return log_vars
        self._held_logs.append(log_vars)
        return {}

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
        rows, self._held_logs = self._held_logs or [], []
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
        return [
            {
                k: next(read)
                if isinstance(v, torch.Tensor) and v.device.type != 'cpu'
                else (v.item() if isinstance(v, torch.Tensor) else v)
                for k, v in row.items()
            }
            for row in rows
        ]

    def _run(self, closure, idx, model) -> StepResult:
        return self.core.step(
            closure, model=model, scaler=self._scaler(model), update=self.step
        )

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
        n = batch_size if result.positions is None else len(result.positions)
        # A plain one-pass step (RST, LookSAM, late-phase SAM) trains no
        # sample sharpness-aware.
        log_vars['sam_frac'] = torch.tensor(
            n / batch_size if result.sam else 0.0
        )
        if result.skipped:
            log_vars['skipped'] = torch.tensor(1.0)
        return log_vars

    def _epoch(self) -> float:
        """Current epoch from mmengine's runtime info (fractional within the
        epoch, so a warm-up may ramp per iteration)."""
        hub = MessageHub.get_current_instance()
        epoch = hub.get_info('epoch')
        if epoch is None:
            if not self._warned_no_epoch:
                warnings.warn(
                    'no epoch in mmengine runtime info (not run by '
                    'a Runner?): the schedule counts epoch 0'
                )
                self._warned_no_epoch = True
            return 0.0
        it, max_iters = hub.get_info('iter'), hub.get_info('max_iters')
        max_epochs = hub.get_info('max_epochs')
        if None in (it, max_iters, max_epochs) or max_epochs <= 0:
            return float(epoch)
        per_epoch = max_iters / max_epochs
        frac = (it - epoch * per_epoch) / per_epoch
        return float(epoch) + min(max(frac, 0.0), 0.999999)

    # --- checkpoints ------------------------------------------------------
    def state_dict(self) -> dict:
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
                    if isinstance(self.core, AUSAM)
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


@OPTIM_WRAPPERS.register_module()
class AUSAMOptimWrapper(SAMOptimWrapper):
    """AUSAM: SAM on an ADLP-sampled subset of each mini-batch.

    Args:
        alpha: fraction of the batch trained on (n = round(alpha K)).
        rho, adaptive, eta, dtype, loss_scale, finite_check: as in
            SAMOptimWrapper.
        s_min, s_max: bounds of the min-max normalisation (Eq. 8).
        warmup_epochs: s_max ramps from s_min to s_max over this many epochs.
        warmup_by: 'epoch' (ramp per epoch, as the authors) or 'iter'.
        init_epochs: leading epochs of full SAM that give every sample a score.
        selector: 'adlp' (AUSAM), 'uniform' (SAM + Random) or 'topk_loss'
            (K-SAM after init_epochs: the path of KSAMOptimWrapper).
        score_average: 'mean' (Eq. 6) or 'ema' (with ``ema_momentum``).
        num_samples: dataset size; None lets the score table grow.
        seed: seed of the selection draws.
    """

    def __init__(
        self,
        optimizer,
        alpha: float = 0.5,
        rho: float = 0.05,
        s_min: float = 0.1,
        s_max: float = 0.5,
        warmup_epochs: float = 30,
        warmup_by: str = 'epoch',
        init_epochs: int = 1,
        selector: str = 'adlp',
        score_average: str = 'mean',
        ema_momentum: float = 0.1,
        num_samples: Optional[int] = None,
        seed: int = 0,
        adaptive: bool = False,
        eta: float = 0.01,
        **kwargs,
    ):
        if warmup_by not in ('epoch', 'iter'):
            raise ValueError(
                f"warmup_by must be 'epoch' or 'iter', got {warmup_by!r}"
            )
        self._ausam_args = dict(
            alpha=alpha,
            s_min=s_min,
            s_max=s_max,
            warmup_epochs=warmup_epochs,
            init_epochs=init_epochs,
            selector=selector,
            score_average=score_average,
            ema_momentum=ema_momentum,
            num_samples=num_samples,
            seed=seed,
        )
        self.warmup_by = warmup_by
        self._warned_tiny_subset = False
        super().__init__(
            optimizer, rho=rho, adaptive=adaptive, eta=eta, **kwargs
        )

    def _build_core(self, **kwargs) -> AUSAM:
        return AUSAM(self.optimizer, **kwargs, **self._ausam_args)

    def _run(self, closure, idx, model) -> StepResult:
        if not self._warned_tiny_subset:
            # The batch size is known at the first step: warn there, once.
            n = subset_size(len(idx), self.core.alpha)
            if n < 2:
                warnings.warn(
                    f'AUSAMOptimWrapper: alpha={self.core.alpha} keeps '
                    f'{n} of the {len(idx)} samples of a batch: a 1-sample '
                    'subset gives a noisy step (and BatchNorm cannot '
                    'train on it); raise alpha or the batch size'
                )
            self._warned_tiny_subset = True
        epoch = self._epoch()
        if self.warmup_by == 'epoch':
            epoch = float(int(epoch))
        return self.core.step(
            closure,
            idx,
            epoch=epoch,
            model=model,
            scaler=self._scaler(model),
            update=self.step,
        )

    def _log_vars(self, result, extras, batch_size):
        log_vars = super()._log_vars(result, extras, batch_size)
        if result.dlp is not None:
            log_vars['dlp_mean'] = result.dlp.mean()
        return log_vars

    # --- the score table, for hooks ---------------------------------------
    def fix_score_table_size(self, num_samples: int) -> None:
        """Size the score table to the dataset; a no-op when its size is
        already fixed (by ``num_samples`` or an earlier call)."""
        if not self.core.table.fixed_size:
            self.core.table.fix_size(num_samples)

    def score_stats(self) -> Dict[str, float]:
        """Scored fraction and statistics of the ADLP scores."""
        return self.core.table.stats()

    def sample_scores(self, sample_idx) -> torch.Tensor:
        """ADLP score of each dataset index (float64); NaN if never
        scored."""
        return self.core.table.scores(sample_idx)

    def selection_counts(self, sample_idx=None) -> torch.Tensor:
        """How many times each dataset index was trained on by the SAM
        passes (and so scored), int64; all indices when None."""
        return self.core.table.counts(sample_idx)


def init_keys(cls) -> set:
    """The keyword settings ``cls(optimizer, ...)`` accepts, along its
    MRO."""
    keys = set()
    for klass in cls.__mro__:
        if klass is object or '__init__' not in vars(klass):
            continue
        for name, par in inspect.signature(klass.__init__).parameters.items():
            if par.kind not in (par.VAR_KEYWORD, par.VAR_POSITIONAL):
                keys.add(name)
    return keys - {'self', 'optimizer'}


def _check_keys(cls, kwargs: dict) -> None:
    """Report a misspelt setting against the SAM-family wrapper that got it
    (it would reach OptimWrapper.__init__ otherwise)."""
    valid = init_keys(cls)
    unknown = sorted(set(kwargs) - valid)
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


def refuse_perturbation_keys(wrapper: str, kwargs: dict, why: str) -> None:
    """A wrapper whose method does not perturb the weights (MESA, SAF)
    refuses SAM's perturbation settings instead of ignoring them."""
    for key in ('rho', 'adaptive', 'eta'):
        if key in kwargs:
            raise ValueError(f'{wrapper} has no {key!r}: {why}')

"""Fake quantizers with a straight-through estimator (STE), in plain PyTorch.

Two quantizers share one interface (``forward(x) -> fake-quantized x``):

* :class:`MinMaxQuantizer` -- QAT as in Jacob et al. 2018: the range comes from
  min/max observers. Weights use the current tensor's range at every forward;
  activations keep an exponential moving average of the batch range.
* :class:`LSQQuantizer` -- learned step size (Esser et al. 2020): the step is a
  parameter, initialised from the first batch, trained with the gradient scale
  ``1 / sqrt(N * Q_p)``.

Both are symmetric (zero point 0). ``signed=True`` gives the grid
``[-2^(b-1), 2^(b-1) - 1]`` (weights, activations that can be negative),
``signed=False`` gives ``[0, 2^b - 1]`` (activations after ReLU), and
``signed=None`` decides on the first batch it sees: signed if any value is
negative. All state (ranges, steps, whether it was initialised, the sign) lives
in buffers/parameters, so it round-trips through ``state_dict``.
"""

import contextlib
import math
from typing import Optional

import torch
from torch import nn

# Smallest allowed step: a channel of all zeros must not divide by zero.
MIN_SCALE = 1e-8

# Sign states stored in the ``sign`` buffer.
_SIGN_UNKNOWN, _UNSIGNED, _SIGNED = -1, 0, 1


def quant_range(bits: int, signed: bool):
    """Integer grid ``(qmin, qmax)`` of a ``bits``-bit quantizer."""
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


class _FakeQuantizeSTE(torch.autograd.Function):
    """One node for quantize-dequantize and its clipped STE: fewer kernels
    and saved tensors than composing the same from autograd-tracked ops."""

    @staticmethod
    def forward(ctx, x, scale, qmin, qmax):
        v = x / scale
        inside = (v >= qmin) & (v <= qmax)
        ctx.save_for_backward(inside)
        return torch.round(v).clamp_(qmin, qmax).mul_(scale)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


def fake_quantize_ste(
    x: torch.Tensor, scale: torch.Tensor, qmin: int, qmax: int
) -> torch.Tensor:
    """``clamp(round(x / scale), qmin, qmax) * scale`` with the clipped STE.

    The gradient w.r.t. ``x`` is 1 where ``qmin <= x / scale <= qmax`` and 0
    outside (Jacob et al. 2018, Bengio et al. 2013). ``scale`` gets no
    gradient.
    """
    return _FakeQuantizeSTE.apply(x, scale.detach(), qmin, qmax)


class _LSQQuantize(torch.autograd.Function):
    """LSQ quantize-dequantize in one node (Esser et al. 2020).

    d y / d x = 1 inside the grid, 0 outside (STE on the rounding).
    d y / d s = round(v) - v inside, the clipped end (qmin or qmax) outside,
    with v = x / s, times the gradient scale ``g``.
    """

    @staticmethod
    def forward(ctx, x, scale, qmin, qmax, g):
        v = x / scale
        inside = (v >= qmin) & (v <= qmax)
        codes = torch.round(v).clamp_(qmin, qmax)
        ctx.save_for_backward(inside, codes - v * inside)
        ctx.g = g
        ctx.scale_shape = scale.shape
        return codes * scale

    @staticmethod
    def backward(ctx, grad):
        inside, d_scale = ctx.saved_tensors
        grad_scale = (grad * d_scale).sum_to_size(ctx.scale_shape) * ctx.g
        return grad * inside, grad_scale, None, None, None


def _channel_view(t: torch.Tensor, like: torch.Tensor, axis: int):
    """Reshape a per-channel vector so it broadcasts along ``axis`` of
    ``like``."""
    shape = [1] * like.dim()
    shape[axis] = -1
    return t.reshape(shape)


class FakeQuantizer(nn.Module):
    """Shared state of the fake quantizers.

    Args:
        bits: bit width (2..16).
        signed: True, False, or None (decide on the first batch).
        num_channels: channels for per-channel quantization along ``axis``
            (weights: output channels, ``axis=0``); None for per-tensor.
    """

    def __init__(
        self,
        bits: int,
        signed: Optional[bool] = None,
        num_channels: Optional[int] = None,
        axis: int = 0,
    ):
        super().__init__()
        if not isinstance(bits, int) or not 2 <= bits <= 16:
            raise ValueError(
                f'quantizer bits must be an int in [2, 16], got {bits!r}'
            )
        self.bits = bits
        self.axis = axis
        self.num_channels = num_channels
        sign = _SIGN_UNKNOWN if signed is None else int(bool(signed))
        self.register_buffer('sign', torch.tensor(sign, dtype=torch.int8))
        self.register_buffer('initialized', torch.tensor(False))
        # Python mirrors of the two buffers above, so a forward never reads a
        # device tensor back (no GPU sync). Refreshed on load_state_dict.
        self._sign = sign
        self._initialized = False
        # Python flags, not state: what the quantizer does on this forward.
        self.fake_quant_enabled = True
        self.observer_enabled = True

    def refresh_state_cache(self):
        """Re-read ``sign``/``initialized`` after their buffers were written
        from outside (load_state_dict does this itself)."""
        self._sign = int(self.sign)
        self._initialized = bool(self.initialized)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.refresh_state_cache()

    def _mark_initialized(self):
        self.initialized.fill_(True)
        self._initialized = True

    @property
    def is_initialized(self) -> bool:
        return self._initialized

    @property
    def per_channel(self) -> bool:
        return self.num_channels is not None

    @property
    def signed(self) -> bool:
        if self._sign == _SIGN_UNKNOWN:
            raise RuntimeError(
                'the quantizer has not seen data yet, so its sign is unknown: '
                'calibrate the model (tasks.qat.calibrate) or load a QAT '
                'checkpoint first'
            )
        return self._sign == _SIGNED

    @property
    def qrange(self):
        return quant_range(self.bits, self.signed)

    @contextlib.contextmanager
    def sam_second_pass(self):
        """Context for SAM's second pass (at w + eps): running statistics
        stay as they are, like BatchNorm's. This quantizer keeps none, so
        nothing changes; subclasses with running statistics override it."""
        yield

    def _settle_sign(self, x: torch.Tensor):
        if self._sign == _SIGN_UNKNOWN:
            self._sign = _SIGNED if bool((x < 0).any()) else _UNSIGNED
            self.sign.fill_(self._sign)

    def _reduce_dims(self, x: torch.Tensor):
        if not self.per_channel:
            return tuple(range(x.dim()))
        return tuple(d for d in range(x.dim()) if d != self.axis % x.dim())

    def _broadcast(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _channel_view(t, x, self.axis) if self.per_channel else t

    def get_scale(self) -> torch.Tensor:
        """Current step size(s), detached: shape ``(C,)`` or ``()``."""
        raise NotImplementedError

    def quantize_to_int(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes ``clamp(round(x / scale), qmin, qmax)`` (float
        dtype)."""
        qmin, qmax = self.qrange
        scale = self._broadcast(self.get_scale(), x).to(x.dtype)
        return torch.clamp(torch.round(x / scale), qmin, qmax)

    def extra_repr(self) -> str:
        sign = {
            _SIGN_UNKNOWN: 'auto',
            _UNSIGNED: 'unsigned',
            _SIGNED: 'signed',
        }[self._sign]
        return f'bits={self.bits}, {sign}, per_channel={self.per_channel}'


class MinMaxQuantizer(FakeQuantizer):
    """Min/max-observer fake quantizer (Jacob et al. 2018).

    Args:
        momentum: weight of the new batch in the moving average of the range.
            1.0 tracks the current tensor only (used for weights); activations
            use a small value (default 0.01, a smoothing constant close to 1 in
            the paper's terms). The first observation sets the range directly.

    The observer runs in training mode, or in any mode inside
    :func:`tasks.qat.calibration_mode`. With ``momentum=1`` (weights) it runs
    at every forward, so the grid always follows the current weights.
    """

    def __init__(
        self,
        bits: int,
        signed: Optional[bool] = None,
        num_channels: Optional[int] = None,
        axis: int = 0,
        momentum: float = 0.01,
    ):
        super().__init__(bits, signed, num_channels, axis)
        if not 0.0 < momentum <= 1.0:
            raise ValueError(
                f'observer momentum must be in (0, 1], got {momentum}'
            )
        self.momentum = momentum
        shape = (num_channels,) if num_channels is not None else ()
        self.register_buffer('min_val', torch.zeros(shape))
        self.register_buffer('max_val', torch.zeros(shape))
        # Set by calibration_mode: observe in eval mode, average batches
        # equally.
        self.calibrating = False
        self._calib_batches = 0

    @torch.no_grad()
    @contextlib.contextmanager
    def sam_second_pass(self):
        """A moving-average observer (activations, ``momentum < 1``) pauses
        for SAM's second pass; a weight grid (``momentum == 1``) keeps
        following the perturbed weights."""
        if self.momentum >= 1.0:
            yield
            return
        saved = self.observer_enabled
        self.observer_enabled = False
        try:
            yield
        finally:
            self.observer_enabled = saved

    def observe(self, x: torch.Tensor):
        """Update the range from ``x``."""
        self._settle_sign(x)
        x = x.detach().float()
        if self.per_channel:  # one (min, max) per slice along axis
            lo, hi = torch.aminmax(
                x.movedim(self.axis, 0).reshape(x.shape[self.axis], -1), dim=1
            )
        else:
            lo, hi = torch.aminmax(x)
        if self.calibrating:
            self._calib_batches += 1
            m = 1.0 / self._calib_batches
        else:
            m = self.momentum
        if not self._initialized or m >= 1.0:
            self.min_val.copy_(lo)
            self.max_val.copy_(hi)
            self._mark_initialized()
        else:
            self.min_val.lerp_(lo, m)
            self.max_val.lerp_(hi, m)

    def get_scale(self) -> torch.Tensor:
        qmin, qmax = self.qrange
        if self.signed:
            amax = torch.maximum(self.min_val.abs(), self.max_val.abs())
            scale = amax / qmax
        else:
            scale = self.max_val.clamp_min(0) / qmax
        return scale.clamp_min(MIN_SCALE).detach()

    def _should_observe(self) -> bool:
        if not self.observer_enabled:
            return False
        return self.training or self.calibrating or self.momentum >= 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._should_observe():
            self.observe(x)
        if not self.fake_quant_enabled:
            return x
        if not self._initialized:
            raise RuntimeError(
                'MinMaxQuantizer has no range yet: calibrate the model '
                '(tasks.qat.calibrate) or load a QAT checkpoint before '
                'running it in eval mode'
            )
        qmin, qmax = self.qrange
        scale = self._broadcast(self.get_scale(), x).to(x.dtype)
        return fake_quantize_ste(x, scale, qmin, qmax)


class LSQQuantizer(FakeQuantizer):
    """Learned step size quantizer (Esser et al. 2020).

    The step ``scale`` is a parameter. On the first batch it is set to
    ``2 * mean(|x|) / sqrt(Q_p)`` (per channel for weights). Its gradient is
    multiplied by ``1 / sqrt(N * Q_p)``, N being the number of elements that
    share one step in a single sample (weights: elements per channel;
    activations: features per sample).

    ``sam_perturb`` (default False): whether SAM/AUSAM perturb the step size
    along with the weights. The core skips parameters marked
    ``p.sam_perturb = False`` in the perturbation (and in its norm); the base
    optimizer still updates them.
    """

    def __init__(
        self,
        bits: int,
        signed: Optional[bool] = None,
        num_channels: Optional[int] = None,
        axis: int = 0,
        batch_axis: Optional[int] = 0,
        sam_perturb: bool = False,
    ):
        super().__init__(bits, signed, num_channels, axis)
        shape = (num_channels,) if num_channels is not None else ()
        self.scale = nn.Parameter(torch.ones(shape))
        self.sam_perturb = sam_perturb
        self.scale.sam_perturb = sam_perturb
        # Activations have a batch dimension that N must not count; weights
        # (per-channel) have none: pass batch_axis=None.
        self.batch_axis = batch_axis
        self.calibrating = False

    @torch.no_grad()
    def init_from(self, x: torch.Tensor):
        """Initial step from data (the paper's rule)."""
        self._settle_sign(x)
        qmax = self.qrange[1]
        dims = self._reduce_dims(x)
        mean_abs = (
            x.detach().float().abs().mean(dim=dims)
            if dims
            else x.detach().float().abs()
        )
        self.scale.copy_((2 * mean_abs / math.sqrt(qmax)).clamp_min(1e-4))
        self._mark_initialized()

    def get_scale(self) -> torch.Tensor:
        return self.scale.detach().abs().clamp_min(MIN_SCALE)

    def _elements_per_step(self, x: torch.Tensor) -> int:
        n = x.numel()
        if self.per_channel:
            n //= x.shape[self.axis]
        if self.batch_axis is not None and x.dim() > 0:
            n //= x.shape[self.batch_axis]
        return max(n, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Re-mark each time: copies of the parameter (deepcopy) lose the flag.
        self.scale.sam_perturb = self.sam_perturb
        if not self._initialized:
            if (
                not (self.training or self.calibrating)
                or not self.observer_enabled
            ):
                raise RuntimeError(
                    'LSQQuantizer has no step size yet: calibrate the model '
                    '(tasks.qat.calibrate) or load a QAT checkpoint first'
                )
            self.init_from(x)
        if not self.fake_quant_enabled:
            return x
        qmin, qmax = self.qrange
        g = 1.0 / math.sqrt(self._elements_per_step(x) * qmax)
        scale = self._broadcast(self.scale.abs().clamp_min(MIN_SCALE), x)
        return _LSQQuantize.apply(x, scale.to(x.dtype), qmin, qmax, g)


QUANTIZERS = {'minmax': MinMaxQuantizer, 'lsq': LSQQuantizer}


def build_quantizer(
    kind: str,
    bits: int,
    *,
    signed: Optional[bool],
    num_channels: Optional[int] = None,
    is_weight: bool,
    act_momentum: float = 0.01,
    sam_perturb: bool = False,
) -> FakeQuantizer:
    """Quantizer for a weight (per-channel, signed) or an activation."""
    if kind not in QUANTIZERS:
        raise ValueError(
            f'quantizer must be one of {sorted(QUANTIZERS)}, got {kind!r}'
        )
    if kind == 'minmax':
        return MinMaxQuantizer(
            bits,
            signed,
            num_channels,
            axis=0,
            momentum=1.0 if is_weight else act_momentum,
        )
    return LSQQuantizer(
        bits,
        signed,
        num_channels,
        axis=0,
        batch_axis=None if is_weight else 0,
        sam_perturb=sam_perturb,
    )

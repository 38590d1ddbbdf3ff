"""SAM and AUSAM steps in plain PyTorch (no mmengine).

SAM (Foret et al. 2021) minimises max_{||eps|| <= rho} L(w + eps) (Eq. 1) with
one ascent step eps = rho * g / ||g|| (Eq. 2) and the gradient taken at
w + eps (Eq. 3). AUSAM (Deng et al.) runs both passes on a subset of the
mini-batch drawn by each sample's ADLP score (Eq. 6-8).
"""

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional

import torch
import torch.distributed as dist
from torch import nn

from .scores import ScoreTable
from .selection import (
    SELECTORS,
    s_max_at,
    select_subset,
    select_topk_loss,
    select_uniform,
    subset_size,
)

# closure(positions) -> {loss name: per-sample loss vector}; positions=None
# means the whole batch.
Closure = Callable[[Optional[torch.Tensor]], Dict[str, torch.Tensor]]


@torch.no_grad()
def perturbation(
    params: List[torch.Tensor],
    rho: float,
    adaptive: bool = False,
    eta: float = 0.01,
) -> List[torch.Tensor]:
    """eps = rho * g / ||g|| (Eq. 2), or ASAM's rho * T^2 g / ||T g|| with
    T = |w| + eta (Kwon et al. 2021). A zero gradient gives eps = 0."""
    grads = [p.grad for p in params]
    if adaptive:
        t = [p.abs().add_(eta) for p in params]
        tg = torch._foreach_mul(t, grads)
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tg)))
        eps = torch._foreach_mul(tg, t)
    else:
        norm = torch.linalg.vector_norm(
            torch.stack(torch._foreach_norm(grads))
        )
        eps = [g.clone() for g in grads]
    # If ||g|| == 0 every g is 0, so eps is 0 whatever the clamp divides by.
    torch._foreach_mul_(eps, rho / norm.clamp_min(1e-12))
    return eps


@contextlib.contextmanager
def frozen_bn_stats(model: Optional[nn.Module]) -> Iterator[None]:
    """Forward without updating BatchNorm running statistics (the second pass
    must not count the perturbed weights' batch twice). Momentum 0 keeps the
    running mean/var; the batch counter is put back afterwards."""
    bns = (
        []
        if model is None
        else [
            m
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats
            and m.training
        ]
    )
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(bns, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


@contextlib.contextmanager
def second_pass(model: Optional[nn.Module]) -> Iterator[None]:
    """Context of the forward at w + eps: BatchNorm statistics frozen, and
    the ``sam_second_pass()`` context of every module that defines one
    entered (e.g. QAT activation observers that must keep their ranges)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(frozen_bn_stats(model))
        for m in [] if model is None else model.modules():
            enter = getattr(m, 'sam_second_pass', None)
            if callable(enter):
                stack.enter_context(enter())
        yield


def rank_by_loss(
    closure: Closure,
    step: int,
    check_finite: bool = True,
    monitor: Optional['FiniteCheck'] = None,
) -> torch.Tensor:
    """Every sample's loss at w from one forward without autograd (K-SAM's
    ranking pass: no graph is kept, so it costs a forward only). It runs in
    train mode and is the step's one BatchNorm statistics update, as the
    whole-batch forward of Ni et al. (2022) is."""
    with torch.no_grad():
        losses = closure(None)
    return total_loss(
        losses, step, 'at w (ranking pass)', check_finite, monitor
    )


def frozen_stats_closure(closure: Closure, model: Optional[nn.Module]):
    """``closure`` with running statistics frozen (BatchNorm, and modules'
    ``sam_second_pass()`` contexts such as QAT observers): after a ranking
    pass the SAM passes on the subset must not update them again."""

    def run(positions=None, **kwargs):
        with second_pass(model):
            return closure(positions, **kwargs)

    return run


def total_loss(
    losses: Dict[str, torch.Tensor],
    step: int,
    where: str,
    check_finite: bool = True,
    monitor: Optional['FiniteCheck'] = None,
) -> torch.Tensor:
    """Sum the per-sample loss vectors; a non-finite loss is an error
    (with fp16 loss scaling it is an overflow for the scaler instead),
    raised here or, through a deferring ``monitor``, at its next check."""
    total = None
    for name, value in losses.items():
        if value.dim() != 1:
            raise ValueError(
                f"loss '{name}' has shape {tuple(value.shape)}: sharpness-"
                'aware steps need one loss per sample (shape (B,), no '
                'reduction)'
            )
        if check_finite and monitor is not None:
            monitor.observe(name, value, step, where)
        elif check_finite and not bool(torch.isfinite(value).all()):
            mean = value.detach().float().mean().item()
            raise FloatingPointError(_not_finite(step, name, where, mean))
        total = value if total is None else total + value
    if total is None:
        raise ValueError('the closure returned no losses')
    return total


def _not_finite(step: int, name: str, where: str, mean: float) -> str:
    return (
        f"step {step}: loss '{name}' {where} is not finite ({mean}); lower "
        'the learning rate or rho, or check the data'
    )


class FiniteCheck:
    """When a non-finite loss is caught.

    ``'every_step'``: each pass reads a flag on the host and raises at
    once (free on a CPU, a stall of the launch queue on a GPU).
    ``'deferred'``: the first non-finite loss (step, name, mean) is recorded
    on the device and read every ``every`` steps (SharpnessAwareLoggerHook
    sets it to the logger's interval and also checks at each epoch end and
    before a checkpoint is saved); the error names the step and the range
    of steps the check covered. The steps after the bad one ran on, so when
    it fires the weights, optimizer state and scores are those after the
    last step of the range (with NaN gradients usually NaN): resume from a
    checkpoint saved before the named step. ``'auto'``: every step where the
    loss is on the CPU, deferred elsewhere.
    """

    MODES = ('auto', 'every_step', 'deferred')

    def __init__(self, mode: str = 'auto', every: int = 10):
        if mode not in self.MODES:
            raise ValueError(
                f'finite_check must be one of {self.MODES}, got {mode!r}'
            )
        if int(every) != every or every < 1:
            raise ValueError(f'finite check interval must be >= 1: {every}')
        self.mode, self.every = mode, int(every)
        self._labels: List[tuple] = []  # (name, where) by label number
        self._record: Optional[torch.Tensor] = None  # (step, label, mean)
        self._since: Optional[int] = None  # first step the check covers

    def _defers(self, value: torch.Tensor) -> bool:
        return self.mode == 'deferred' or (
            self.mode == 'auto' and value.device.type != 'cpu'
        )

    def observe(
        self, name: str, value: torch.Tensor, step: int, where: str
    ) -> None:
        if not self._defers(value):
            if not bool(torch.isfinite(value).all()):
                mean = value.detach().float().mean().item()
                raise FloatingPointError(_not_finite(step, name, where, mean))
            return
        if self._since is None:  # a resumed run starts at its own step
            self._since = step
        if (name, where) not in self._labels:
            self._labels.append((name, where))
        label = self._labels.index((name, where))
        value = value.detach()
        full = dict(dtype=torch.float64, device=value.device)
        if self._record is None or self._record.device != value.device:
            self._record = torch.tensor([-1.0, -1.0, 0.0], **full)
        mean = value.float().mean().double()
        here = torch.stack(
            [torch.full((), step, **full), torch.full((), label, **full), mean]
        )
        first = ~torch.isfinite(value).all() & (self._record[0] < 0)
        self._record = torch.where(first, here, self._record)

    def due(self, step: int) -> bool:
        return self._record is not None and (step + 1) % self.every == 0

    def check(self, upto: int) -> None:
        """Read the record (one host sync) and raise if a loss of steps
        up to ``upto`` was not finite."""
        covered = (upto if self._since is None else self._since, upto)
        self._since = upto + 1
        if self._record is None:
            return
        step, label, mean = self._record.tolist()
        if step < 0:
            return
        name, where = self._labels[int(label)]
        raise FloatingPointError(
            _not_finite(int(step), name, where, mean)
            + f' (deferred check of steps {covered[0]}-{covered[1]}: the '
            f'steps after {int(step)} ran on, so the weights, optimizer '
            f'state and scores are those after step {covered[1]}; resume '
            f'from a checkpoint saved before step {int(step)})'
        )


@dataclass
class StepResult:
    """What one sharpness-aware step did, for logging and tests."""

    losses: Dict[str, torch.Tensor] = field(default_factory=dict)
    loss_before: Optional[torch.Tensor] = None  # per-sample, at w
    loss_after: Optional[torch.Tensor] = None  # per-sample, at w + eps
    positions: Optional[torch.Tensor] = None  # selected batch positions
    dlp: Optional[torch.Tensor] = None  # |loss_after - loss_before| (Eq. 5)
    skipped: bool = False  # fp16 overflow: no update, no scores
    sam: bool = True  # False: a plain one-pass step of the base optimizer


class SAM:
    """Sharpness-aware minimisation around any torch optimizer.

    ``step(closure)`` runs: pass 1 at w, w <- w + eps (Eq. 2), pass 2 at
    w + eps without BN statistic updates, restore w, then ``update()`` (by
    default the base optimizer's step) with the gradient at w + eps (Eq. 3).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
    ):
        if rho < 0:
            raise ValueError(f'rho must be >= 0, got {rho}')
        self.optimizer = optimizer
        self.rho = rho
        self.adaptive = adaptive
        self.eta = eta
        self.num_steps = 0
        self._saved: Optional[tuple] = None
        self.finite = FiniteCheck()

    def check_finite(self) -> None:
        """Raise now for a non-finite loss recorded by a deferred check."""
        self.finite.check(self.num_steps - 1)

    def _checked(self, step: int, result: 'StepResult') -> 'StepResult':
        if self.finite.due(step):
            self.finite.check(step)
        return result

    def _device(self) -> torch.device:
        for group in self.optimizer.param_groups:
            for p in group['params']:
                return p.device
        return torch.device('cpu')

    def _params_with_grad(self) -> List[torch.Tensor]:
        return [
            p
            for group in self.optimizer.param_groups
            for p in group['params']
            if p.grad is not None
        ]

    @torch.no_grad()
    def perturb(self) -> None:
        """w <- w + eps, keeping an exact copy of w to restore. Parameters
        marked ``p.sam_perturb = False`` (e.g. quantizer step sizes) are
        left out of eps and its norm, but still updated by the optimizer."""
        params = [
            p
            for p in self._params_with_grad()
            if getattr(p, 'sam_perturb', True)
        ]
        eps = perturbation(params, self.rho, self.adaptive, self.eta)
        self._saved = (params, [p.detach().clone() for p in params])
        torch._foreach_add_(params, eps)

    @torch.no_grad()
    def restore(self) -> None:
        """w + eps -> w (bit-exact)."""
        params, old = self._saved
        torch._foreach_copy_(params, old)
        self._saved = None

    def two_passes(
        self,
        closure: Closure,
        positions: Optional[torch.Tensor],
        model: Optional[nn.Module] = None,
        scaler: Optional['torch.amp.GradScaler'] = None,
        update: Optional[Callable[[], None]] = None,
        first_losses: Optional[Dict[str, torch.Tensor]] = None,
    ) -> StepResult:
        """Both SAM passes on ``positions`` of the batch, then the update."""
        update = update or self.optimizer.step
        step = self.num_steps
        self.num_steps += 1

        losses1 = (
            first_losses if first_losses is not None else closure(positions)
        )
        # Under fp16 a non-finite loss is an overflow: its gradients are
        # non-finite too, and the checks below skip the step.
        l1 = total_loss(losses1, step, 'at w', scaler is None, self.finite)
        backward(l1.mean(), scaler)
        if scaler is not None:
            # Unscale before the norm of Eq. 2; an overflow skips the step
            # the way mmengine's AmpOptimWrapper does (update() sees inf).
            params = self._params_with_grad()
            grads = [p.grad for p in params]
            torch._foreach_mul_(grads, 1.0 / scaler.get_scale())
            norms = torch._foreach_norm(grads) if grads else []
            if grads and not bool(torch.isfinite(torch.stack(norms)).all()):
                update()
                self.optimizer.zero_grad(set_to_none=True)
                return StepResult(
                    losses={k: v.detach() for k, v in losses1.items()},
                    loss_before=l1.detach(),
                    positions=positions,
                    skipped=True,
                )
        self.perturb()
        self.optimizer.zero_grad(set_to_none=True)
        with second_pass(model):
            losses2 = closure(positions)
        l2 = total_loss(
            losses2, step, 'at w + eps', scaler is None, self.finite
        )
        backward(l2.mean(), scaler)
        self.restore()
        update()  # with fp16, the scaler skips a step whose grads overflowed
        self.optimizer.zero_grad(set_to_none=True)
        l1, l2 = l1.detach(), l2.detach()
        dlp = (l2 - l1).abs()  # Eq. 5
        result = StepResult(
            losses={k: v.detach() for k, v in losses1.items()},
            loss_before=l1,
            loss_after=l2,
            positions=positions,
            dlp=dlp,
            skipped=scaler is not None and not bool(torch.isfinite(dlp).all()),
        )
        return self._checked(step, result)

    def one_pass(
        self,
        closure: Closure,
        positions: Optional[torch.Tensor] = None,
        scaler: Optional['torch.amp.GradScaler'] = None,
        update: Optional[Callable[[], None]] = None,
    ) -> StepResult:
        """A plain step of the base optimizer: one forward/backward at w,
        then ``update()`` (which may first edit the gradient, e.g. LookSAM).
        With fp16 the gradient stays scaled; the scaler's step unscales it
        and skips the step on an overflow."""
        update = update or self.optimizer.step
        step = self.num_steps
        self.num_steps += 1
        losses = closure(positions)
        loss = total_loss(losses, step, 'at w', scaler is None, self.finite)
        backward(loss.mean(), scaler)
        overflow = False
        if scaler is not None:  # the scaler will skip this step: say so
            grads = [p.grad for p in self._params_with_grad()]
            norms = torch._foreach_norm(grads) if grads else []
            overflow = bool(grads) and not bool(
                torch.isfinite(torch.stack(norms)).all()
            )
        update()
        self.optimizer.zero_grad(set_to_none=True)
        result = StepResult(
            losses={k: v.detach() for k, v in losses.items()},
            loss_before=loss.detach(),
            positions=positions,
            skipped=overflow,
            sam=False,
        )
        return self._checked(step, result)

    def step(
        self,
        closure: Closure,
        model: Optional[nn.Module] = None,
        scaler=None,
        update=None,
    ) -> StepResult:
        return self.two_passes(closure, None, model, scaler, update)

    def state_dict(self) -> dict:
        return {'num_steps': self.num_steps}

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])


def backward(loss: torch.Tensor, scaler=None) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward()


class AUSAM(SAM):
    """SAM on an importance-sampled subset of each mini-batch.

    Each step draws n = round(alpha K) of the K samples with probability
    from their ADLP scores (Eq. 7-8), runs both SAM passes on them only and
    folds DLP_i = |l_i(w + eps) - l_i(w)| into the score table (Eq. 5-6).
    During the first ``init_epochs`` every sample is used (alpha ignored) so
    that each gets a real score.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        alpha: float = 0.5,
        s_min: float = 0.1,
        s_max: float = 0.5,
        warmup_epochs: float = 30,
        init_epochs: int = 1,
        selector: str = 'adlp',
        score_average: str = 'mean',
        ema_momentum: float = 0.1,
        num_samples: Optional[int] = None,
        seed: int = 0,
        adaptive: bool = False,
        eta: float = 0.01,
    ):
        super().__init__(optimizer, rho, adaptive, eta)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f'alpha must be in (0, 1], got {alpha}')
        if s_min <= 0 or s_min > s_max:
            raise ValueError(
                f'need 0 < s_min <= s_max, got s_min={s_min}, s_max={s_max}'
            )
        if selector not in SELECTORS:
            raise ValueError(
                f'unknown selector {selector!r}; choose one of {SELECTORS}'
            )
        if init_epochs < 0 or warmup_epochs < 0:
            raise ValueError('init_epochs and warmup_epochs must be >= 0')
        self.alpha = alpha
        self.s_min, self.s_max = s_min, s_max
        self.warmup_epochs = warmup_epochs
        self.init_epochs = init_epochs
        self.selector = selector
        self.seed = int(seed)
        self.table = ScoreTable(num_samples, score_average, ema_momentum)
        self._gather_width: Optional[int] = None

    def _generator(self, device='cpu') -> torch.Generator:
        # A fresh stream per (seed, step, rank) on the training device:
        # resuming needs only the step counter (on either device type, each
        # with its own stream), and data-parallel ranks draw independently.
        rank = dist.get_rank() if _distributed() else 0
        g = torch.Generator(device=device)
        g.manual_seed((self.seed * 1_000_003 + self.num_steps) * 4099 + rank)
        return g

    def select(
        self,
        sample_idx: torch.Tensor,
        epoch: float,
        losses: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Positions of the batch to train on at this step, on the device
        of ``sample_idx``. Host indices are range-checked and moved to the
        score table's device; device indices count as checked."""
        if torch.as_tensor(sample_idx).device.type == 'cpu':
            sample_idx = self.table._check(sample_idx)
        k, device = len(sample_idx), sample_idx.device
        if epoch < self.init_epochs or self.alpha >= 1.0:
            return torch.arange(k, device=device)
        n = subset_size(k, self.alpha)
        if self.selector == 'uniform':
            return select_uniform(k, n, self._generator(device))
        if self.selector == 'topk_loss':
            return select_topk_loss(losses, n)
        s_max = s_max_at(epoch, self.s_min, self.s_max, self.warmup_epochs)
        return select_subset(
            self.table.lookup(sample_idx),
            n,
            self.s_min,
            s_max,
            self._generator(device),
        )

    def step(
        self,
        closure: Closure,
        sample_idx: Iterable[int],
        epoch: float = 0.0,
        model: Optional[nn.Module] = None,
        scaler=None,
        update=None,
    ) -> StepResult:
        # The table lives on the training device; the indices are checked on
        # the host (they come from there), before any work on a bad one.
        self.table.to(self._device())
        sample_idx = self.table._check(sample_idx)
        if (
            self.selector == 'topk_loss'
            and self.alpha < 1.0
            and epoch >= self.init_epochs
        ):
            # K-SAM (the same path as methods.KSAM): rank by a no-grad
            # forward, then both passes on the top n with stats frozen.
            ranked = rank_by_loss(
                closure, self.num_steps, scaler is None, self.finite
            )
            pos = self.select(sample_idx, epoch, ranked)
            closure = frozen_stats_closure(closure, model)
        else:
            pos = self.select(sample_idx, epoch)
        result = self.two_passes(closure, pos, model, scaler, update)
        if not result.skipped:
            idx, dlp, weight = self._gather(
                sample_idx[pos], result.dlp, len(sample_idx)
            )
            # Indices from other ranks were checked there; a growing table
            # must still see them to grow alike on every rank.
            checked = self.table.fixed_size or weight is None
            self.table.update(idx, dlp, weight, checked=checked)  # Eq. 6
        return result

    def _gather(self, idx, dlp, batch_size: int) -> tuple:
        if not _distributed():
            return idx, dlp, None
        if self._gather_width is None:
            # Once per run (a host read): the largest batch of any rank,
            # which every later subset fits in.
            k = torch.tensor([batch_size], device=idx.device)
            dist.all_reduce(k, op=dist.ReduceOp.MAX)
            self._gather_width = int(k.item())
        return gather_scores(idx, dlp, self._gather_width)

    def state_dict(self) -> dict:
        return {
            'num_steps': self.num_steps,
            'seed': self.seed,
            'scores': self.table.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])
        if 'scores' not in state:
            warnings.warn(
                'the checkpoint holds plain SAM state: AUSAM '
                'starts with an empty score table'
            )
            return
        if int(state['seed']) != self.seed:
            warnings.warn(
                f"resuming with the checkpoint's selection seed "
                f'{state["seed"]} instead of {self.seed}, so the '
                'draws continue the same stream'
            )
        self.seed = int(state['seed'])
        self.table.load_state_dict(state['scores'])


def _distributed() -> bool:
    return (
        dist.is_available()
        and dist.is_initialized()
        and dist.get_world_size() > 1
    )


def gather_scores(idx: torch.Tensor, dlp: torch.Tensor, width: int) -> tuple:
    """All ranks' (index, DLP) pairs, so every rank keeps the same table.

    Every rank sends ``width`` columns (the same on all ranks), its pairs
    first and then padding, and gets back ``(idx, dlp, weight)`` with
    weight 0 on padding (index 0, DLP 0): the exchange stays on the device
    the table lives on (the GPU under NCCL) and needs no host read."""
    if not _distributed():
        return idx, dlp, None
    n = idx.numel()
    if n > width:
        raise RuntimeError(
            f'rank {dist.get_rank()} scored {n} samples in one step, more '
            f'than the {width} of the first step: every rank must start '
            'with a full batch (the largest it will ever see)'
        )
    # Indices are exact in float64 up to 2**53.
    packed = torch.zeros(3, width, dtype=torch.float64, device=idx.device)
    packed[0, :n] = idx.double()
    packed[1, :n] = dlp.detach().double()
    packed[2, :n] = 1.0
    parts = [torch.empty_like(packed) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, packed)
    allp = torch.cat(parts, dim=1)
    return allp[0].round().long(), allp[1], allp[2].long()

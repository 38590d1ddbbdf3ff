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
    closure: Closure, step: int, check_finite: bool = True
) -> torch.Tensor:
    """Every sample's loss at w from one forward without autograd (K-SAM's
    ranking pass: no graph is kept, so it costs a forward only). It runs in
    train mode and is the step's one BatchNorm statistics update, as the
    whole-batch forward of Ni et al. (2022) is."""
    with torch.no_grad():
        losses = closure(None)
    return total_loss(losses, step, 'at w (ranking pass)', check_finite)


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
) -> torch.Tensor:
    """Sum the per-sample loss vectors; a non-finite loss is an error
    (with fp16 loss scaling it is an overflow for the scaler instead)."""
    total = None
    for name, value in losses.items():
        if value.dim() != 1:
            raise ValueError(
                f"loss '{name}' has shape {tuple(value.shape)}: sharpness-"
                'aware steps need one loss per sample (shape (B,), no '
                'reduction)'
            )
        if check_finite and not bool(torch.isfinite(value).all()):
            raise FloatingPointError(
                f"step {step}: loss '{name}' {where} is not finite "
                f'({value.detach().float().mean().item()}); lower the '
                'learning rate or rho, or check the data'
            )
        total = value if total is None else total + value
    if total is None:
        raise ValueError('the closure returned no losses')
    return total


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
        l1 = total_loss(losses1, step, 'at w', check_finite=scaler is None)
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
            losses2, step, 'at w + eps', check_finite=scaler is None
        )
        backward(l2.mean(), scaler)
        self.restore()
        update()  # with fp16, the scaler skips a step whose grads overflowed
        self.optimizer.zero_grad(set_to_none=True)
        l1, l2 = l1.detach(), l2.detach()
        dlp = (l2 - l1).abs()  # Eq. 5
        return StepResult(
            losses={k: v.detach() for k, v in losses1.items()},
            loss_before=l1,
            loss_after=l2,
            positions=positions,
            dlp=dlp,
            skipped=scaler is not None and not bool(torch.isfinite(dlp).all()),
        )

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
        loss = total_loss(losses, step, 'at w', check_finite=scaler is None)
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
        return StepResult(
            losses={k: v.detach() for k, v in losses.items()},
            loss_before=loss.detach(),
            positions=positions,
            skipped=overflow,
            sam=False,
        )

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

    def _generator(self) -> torch.Generator:
        # A fresh stream per (seed, step, rank): resuming needs only the
        # step counter, and data-parallel ranks draw independently.
        rank = dist.get_rank() if _distributed() else 0
        g = torch.Generator()
        g.manual_seed((self.seed * 1_000_003 + self.num_steps) * 4099 + rank)
        return g

    def select(
        self,
        sample_idx: torch.Tensor,
        epoch: float,
        losses: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Positions of the batch to train on at this step."""
        k = len(sample_idx)
        if epoch < self.init_epochs or self.alpha >= 1.0:
            return torch.arange(k)
        n = subset_size(k, self.alpha)
        if self.selector == 'uniform':
            return select_uniform(k, n, self._generator())
        if self.selector == 'topk_loss':
            return select_topk_loss(losses, n)
        s_max = s_max_at(epoch, self.s_min, self.s_max, self.warmup_epochs)
        return select_subset(
            self.table.scores(sample_idx),
            n,
            self.s_min,
            s_max,
            self._generator(),
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
        sample_idx = torch.as_tensor(sample_idx, dtype=torch.int64).cpu()
        self.table._check(sample_idx)  # fail before any work on a bad index
        if (
            self.selector == 'topk_loss'
            and self.alpha < 1.0
            and epoch >= self.init_epochs
        ):
            # K-SAM (the same path as methods.KSAM): rank by a no-grad
            # forward, then both passes on the top n with stats frozen.
            ranked = rank_by_loss(closure, self.num_steps, scaler is None)
            pos = self.select(sample_idx, epoch, ranked)
            closure = frozen_stats_closure(closure, model)
        else:
            pos = self.select(sample_idx, epoch)
        result = self.two_passes(closure, pos, model, scaler, update)
        if not result.skipped:
            idx, dlp = gather_scores(sample_idx[pos], result.dlp.cpu())
            self.table.update(idx, dlp)  # Eq. 6
        return result

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


def gather_scores(idx: torch.Tensor, dlp: torch.Tensor) -> tuple:
    """All ranks' (index, DLP) pairs, so every rank keeps the same table."""
    if not _distributed():
        return idx, dlp
    device = (
        torch.device('cuda', torch.cuda.current_device())
        if dist.get_backend() == 'nccl'
        else torch.device('cpu')
    )
    world = dist.get_world_size()
    n = torch.tensor([idx.numel()], device=device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    width = int(max(s.item() for s in sizes))
    # Indices are exact in float64 up to 2**53.
    packed = torch.zeros(2, width, dtype=torch.float64, device=device)
    packed[0, : idx.numel()] = idx.to(device, torch.float64)
    packed[1, : idx.numel()] = dlp.to(device, torch.float64)
    parts = [torch.empty_like(packed) for _ in range(world)]
    dist.all_gather(parts, packed)
    parts = [p[:, : int(s.item())].cpu() for p, s in zip(parts, sizes)]
    allp = torch.cat(parts, dim=1)
    return allp[0].round().long(), allp[1]

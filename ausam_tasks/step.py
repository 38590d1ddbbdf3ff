"""The step protocol every method follows, and the pieces they share.

A method is a class with one ``rule(closure, ctx) -> StepResult`` built from
the shared pieces below; ``Method.step(closure, ctx)`` counts the step, fills
the context and runs the rule. The closure gives per-sample losses:

    closure(positions=None, with_outputs=False) -> {'loss*': (n,) tensor}

``positions`` are rows of the batch (None: all); with ``with_outputs=True``
it returns ``(losses, outputs)``, the model's per-sample outputs.
"""

import dataclasses
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import (
    Callable,
    ContextManager,
    Dict,
    FrozenSet,
    List,
    Optional,
    Tuple,
)

import torch
from torch import nn

from .finite import FiniteCheck, total_loss
from .perturb import frozen_stats_closure, perturbed, second_pass
from .selection import select_topk_loss, subset_size

Closure = Callable[..., Dict[str, torch.Tensor]]


@dataclass
class StepContext:
    """What a step may need besides the closure."""

    sample_idx: Optional[torch.Tensor] = None  # dataset index of each row
    epoch: float = 0.0  # fractional: 1.5 is half-way through epoch 1
    progress: float = 0.0  # training progress, iter / max_iters
    model: Optional[nn.Module] = None  # BatchNorm freezing, a teacher
    scaler: Optional['torch.amp.GradScaler'] = None  # fp16 loss scaling
    # The optimizer step with the final gradient (clipping, the scaler's
    # step); None: the base optimizer's step.
    update: Optional[Callable[[], None]] = None
    # Per-sample loss weights by pass ('first': at w, 'second': at w + eps),
    # one per batch row: InfoBatch's on one pass, AUSAM's importance weights.
    # A weighted pass backpropagates mean(w_i * l_i).
    weights: Dict[str, torch.Tensor] = field(default_factory=dict)
    # Under DDP with perturbation='local': the context (DDP's no_sync) the
    # first SAM pass runs in, so each rank perturbs with its own gradient.
    local_first_pass: Optional[Callable[[], ContextManager]] = None
    step: int = 0  # set by Method.step: this step's number


@dataclass
class StepResult:
    """What one step did, for logging and tests."""

    losses: Dict[str, torch.Tensor] = field(default_factory=dict)
    loss_before: Optional[torch.Tensor] = None  # per-sample, at w
    loss_after: Optional[torch.Tensor] = None  # per-sample, at w + eps
    positions: Optional[torch.Tensor] = None  # rows of the SAM passes
    dlp: Optional[torch.Tensor] = None  # |loss_after - loss_before| (Eq. 5)
    # fp16 only: a pass overflowed, so nothing was applied (no update, no
    # method state); an fp32 non-finite loss is a FloatingPointError.
    skipped: bool = False
    # True: SAM passes; False: a plain one-pass step of the base optimizer;
    # None: a method without SAM passes (nothing to log as sam_frac).
    sam: Optional[bool] = True
    logs: Dict[str, torch.Tensor] = field(default_factory=dict)  # extra


def backward(loss: torch.Tensor, scaler=None) -> None:
    (scaler.scale(loss) if scaler is not None else loss).backward()


class Chunks:
    """One batch made of several micro-batches: an accumulation cycle's
    loader batches, or one batch cut into ``micro_batch_size`` pieces.

    It answers ``closure(positions, with_outputs)`` for the concatenation of
    the micro-batches (``positions`` index the concatenation), and
    ``Method.pass_at`` runs a pass one micro-batch at a time, each with its
    own backward, so only one micro-batch's graph is alive at a time.
    """

    def __init__(self, parts: List[Closure], sizes: List[int]):
        flat_parts, flat_sizes = [], []
        for part, size in zip(parts, sizes, strict=True):
            if isinstance(part, Chunks):  # micro-batches of a cycle's batch
                flat_parts += part.parts
                flat_sizes += part.sizes
            else:
                flat_parts.append(part)
                flat_sizes.append(int(size))
        self.parts, self.sizes = flat_parts, flat_sizes
        self.offsets = [0]
        for n in self.sizes:
            self.offsets.append(self.offsets[-1] + n)
        self._split = (None, None)  # (positions, its pieces): see split

    def __len__(self) -> int:
        return self.offsets[-1]

    def split(self, positions: Optional[torch.Tensor]):
        """(micro-batch closure, its rows or None for all) of each
        micro-batch ``positions`` reaches, in order of the concatenation
        (``positions`` are sorted, as every selector returns them). Both
        passes get the same ``positions`` tensor and so the same row
        tensors, which the parts' subset caches key on."""
        if positions is None:
            return [(part, None) for part in self.parts]
        if self._split[0] is not positions:
            pieces = []
            for part, lo, hi in zip(
                self.parts, self.offsets, self.offsets[1:]
            ):
                rows = positions[(positions >= lo) & (positions < hi)] - lo
                if len(rows):
                    pieces.append((part, rows))
            self._split = (positions, pieces)
        return self._split[1]

    @property
    def extras(self) -> Dict[str, torch.Tensor]:
        """The first micro-batch's logged extras (e.g. accuracy)."""
        return getattr(self.parts[0], 'extras', {})

    @property
    def net(self):
        """The module the micro-batches' closures call (DDP's no_sync)."""
        return getattr(self.parts[0], 'net', None)

    def __call__(self, positions=None, with_outputs=False):
        results = [
            part(rows, with_outputs=True) if with_outputs else part(rows)
            for part, rows in self.split(positions)
        ]
        if with_outputs:
            losses = [r[0] for r in results]
            outputs = torch.cat([r[1] for r in results])
            return _cat(losses), outputs
        return _cat(results)


def no_sync_of(closure: Closure) -> Optional[Callable[[], ContextManager]]:
    """DDP's ``no_sync`` of the module the closure calls (``closure.net``);
    None for a module without one (no DDP: nothing to hold back)."""
    return getattr(getattr(closure, 'net', None), 'no_sync', None)


def _cat(losses: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    return {k: torch.cat([d[k] for d in losses]) for k in losses[0]}


def weighted(
    total: torch.Tensor,
    weights: Optional[torch.Tensor],
    positions: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The per-sample total times the weights of its rows (if any)."""
    if weights is None:
        return total
    if positions is not None:
        weights = weights[positions.to(weights.device)]
    return total * weights.to(total.device, total.dtype)


def _detached(losses: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in losses.items()}


class Method:
    """Base of every method: the step counter, the finite-loss check and
    the shared pieces (a pass, the perturbed pass, unscaling, the update).

    ``needs`` declares what the step needs: ``'sample_idx'`` (per-sample
    state), ``'outputs'`` (the closure's ``with_outputs=True``, a model
    with ``forward(..., mode='loss_and_outputs')``), ``'model'``.
    """

    needs: FrozenSet[str] = frozenset()
    # The passes InfoBatch's loss weights may act on. Read from the class's
    # own body, not inherited: a subclass changes the step, so it says
    # again what it supports.
    infobatch_passes: Tuple[str, ...] = ()
    # perturbation='local' under DDP needs a first pass whose gradient sets
    # eps and nothing else of that gradient in the update.
    perturbations: Tuple[str, ...] = ('global',)
    local_refusal = 'it has no first pass whose gradient sets a perturbation'
    # Why accumulative_counts / micro_batch_size cannot apply ('' if they
    # can): the cycle's micro-batches run one at a time in each pass.
    no_accumulation = ''

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.num_steps = 0
        self.finite = FiniteCheck()

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        raise NotImplementedError

    def step(
        self, closure: Closure, ctx: Optional[StepContext] = None, **fields
    ) -> StepResult:
        """One step. ``ctx`` or its fields as keywords, e.g.
        ``step(closure, sample_idx=idx, epoch=e, model=m)``; a model or the
        sample indices may also come second."""
        if ctx is not None and not isinstance(ctx, StepContext):
            # Plain-PyTorch shorthand: step(closure, model) or
            # step(closure, sample_idx).
            key = 'model' if isinstance(ctx, nn.Module) else 'sample_idx'
            fields[key], ctx = ctx, None
        ctx = dataclasses.replace(ctx or StepContext(), **fields)
        for need in self.needs & {'sample_idx', 'model'}:
            if getattr(ctx, need) is None:
                raise ValueError(
                    f'{type(self).__name__} needs {need} in its step context'
                )
        ctx.step = self.num_steps
        if ctx.update is None:
            ctx.update = self.optimizer.step
        try:  # num_steps is this step's number inside the rule
            result = self.rule(closure, ctx)
        finally:
            self.num_steps += 1
        if self.finite.due(ctx.step):
            self.finite.check(ctx.step)
        return result

    def check_finite(self) -> None:
        """Raise now for a non-finite loss recorded by a deferred check."""
        self.finite.check(self.num_steps - 1)

    # --- shared pieces ------------------------------------------------
    def params(self) -> List[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g['params']]

    def params_with_grad(self) -> List[torch.Tensor]:
        return [p for p in self.params() if p.grad is not None]

    def device(self) -> torch.device:
        for p in self.params():
            return p.device
        return torch.device('cpu')

    def loss(
        self,
        losses: Dict[str, torch.Tensor],
        ctx: StepContext,
        where: str,
    ) -> torch.Tensor:
        """The per-sample total, checked (fp32) or left to the scaler."""
        return total_loss(
            losses, ctx.step, where, ctx.scaler is None, self.finite
        )

    def pass_at(
        self,
        closure: Closure,
        ctx: StepContext,
        positions: Optional[torch.Tensor] = None,
        where: str = 'at w',
        stage: str = 'first',
    ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
        """Forward and backward of the rows ``positions``, weighted by
        ``ctx.weights[stage]`` if set: (losses, the detached per-sample
        total)."""
        w = ctx.weights.get(stage)
        if isinstance(closure, Chunks):
            return self._chunked_pass(closure, ctx, positions, where, w)
        losses = closure(positions)
        total = self.loss(losses, ctx, where)
        backward(weighted(total, w, positions).mean(), ctx.scaler)
        return _detached(losses), total.detach()

    def _chunked_pass(self, closure, ctx, positions, where, w):
        """``pass_at`` one micro-batch at a time: each backward adds its
        share, sum / n, of the mean over all n rows. Under DDP only the
        last backward all-reduces (the others run in ``no_sync``): one
        exchange per pass, and the same count on every rank even when a
        subset reaches a different number of micro-batches on each."""
        n = len(closure) if positions is None else len(positions)
        if w is not None and positions is not None:
            w = w[positions.to(w.device)]  # the rows' weights, in order
        pieces = closure.split(positions)
        quiet = no_sync_of(closure) or nullcontext
        losses, totals, done = [], [], 0
        for i, (part, rows) in enumerate(pieces):
            last = i == len(pieces) - 1
            with nullcontext() if last else quiet():
                part_losses = part(rows)
                total = self.loss(part_losses, ctx, where)
                k = len(total)
                wk = None if w is None else w[done : done + k]
                backward(weighted(total, wk).sum() / n, ctx.scaler)
            losses.append(_detached(part_losses))
            totals.append(total.detach())
            done += k
        return _cat(losses), torch.cat(totals)

    def unscaled(self, ctx: StepContext) -> bool:
        """fp16: unscale the gradients in place (before a norm of them);
        False on an overflow. True without a scaler."""
        if ctx.scaler is None:
            return True
        grads = [p.grad for p in self.params_with_grad()]
        if not grads:
            return True
        torch._foreach_mul_(grads, 1.0 / ctx.scaler.get_scale())
        return bool(
            torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()
        )

    def overflowed(self, ctx: StepContext) -> bool:
        """fp16: whether the gradients overflowed (the scaler will skip)."""
        if ctx.scaler is None:
            return False
        grads = [p.grad for p in self.params_with_grad()]
        if not grads:
            return False
        norms = torch.stack(torch._foreach_norm(grads))
        return not bool(torch.isfinite(norms).all())

    def apply(self, ctx: StepContext) -> None:
        """The update with the gradient in ``p.grad``, then zero it. Also
        on an fp16 overflow: the scaler skips the step and backs off."""
        ctx.update()
        self.optimizer.zero_grad(set_to_none=True)

    def skip(self, ctx, losses, loss, positions=None) -> StepResult:
        """An fp16 overflow in the first pass: no perturbation, no update."""
        self.apply(ctx)
        return StepResult(
            losses=losses, loss_before=loss, positions=positions, skipped=True
        )

    def epsilon(
        self, params: List[torch.Tensor], ctx: StepContext
    ) -> List[torch.Tensor]:
        """The perturbation from the (unscaled) gradients at w."""
        raise NotImplementedError

    def perturbable(self) -> List[torch.Tensor]:
        """Parameters eps moves: those with a gradient, except any marked
        ``p.sam_perturb = False`` (e.g. quantizer step sizes, which the
        optimizer still updates)."""
        return [
            p
            for p in self.params_with_grad()
            if getattr(p, 'sam_perturb', True)
        ]

    def top_loss_subset(
        self, closure: Closure, ctx: StepContext, alpha: float
    ) -> Tuple[torch.Tensor, Closure]:
        """(positions of the top round(alpha K) losses at w, the closure
        with running statistics frozen): K-SAM's selection (Ni et al.
        2022). The ranking forward runs without autograd in train mode and
        is the step's one running-statistics update, as their whole-batch
        forward is; the SAM passes on the subset leave the statistics
        alone."""
        with torch.no_grad():
            ranked = self.loss(closure(None), ctx, 'at w (ranking pass)')
        pos = select_topk_loss(ranked, subset_size(len(ranked), alpha))
        return pos, frozen_stats_closure(closure, ctx.model)

    def second_pass(self, closure, ctx, positions, loss_before):
        """Forward/backward at w + eps: (per-sample loss, positions)."""
        l2 = self.pass_at(closure, ctx, positions, 'at w + eps', 'second')
        return l2[1], positions

    def sam_step(
        self,
        closure: Closure,
        ctx: StepContext,
        positions: Optional[torch.Tensor] = None,
        before_update: Optional[Callable[[StepContext], None]] = None,
    ) -> StepResult:
        """Both SAM passes on the rows ``positions``: the gradient at w,
        w + eps (``epsilon``), the gradient there with running statistics
        frozen, w restored, ``before_update``, then the update (Eq. 3)."""
        local = ctx.local_first_pass or nullcontext
        with local():  # 'local': this rank's own gradient sets eps
            losses, l1 = self.pass_at(closure, ctx, positions)
        if not self.unscaled(ctx):
            return self.skip(ctx, losses, l1, positions)
        params = self.perturbable()
        eps = self.epsilon(params, ctx)
        self.optimizer.zero_grad(set_to_none=True)
        with perturbed(params, eps), second_pass(ctx.model):
            l2, positions = self.second_pass(closure, ctx, positions, l1)
        skipped = self.overflowed(ctx)
        if before_update is not None and not skipped:
            before_update(ctx)
        self.apply(ctx)
        return StepResult(
            losses=losses,
            loss_before=l1,
            loss_after=l2,
            positions=positions,
            skipped=skipped,
        )

    def plain_step(
        self,
        closure: Closure,
        ctx: StepContext,
        before_update: Optional[Callable[[StepContext], None]] = None,
        sam: Optional[bool] = False,
    ) -> StepResult:
        """A plain step of the base optimizer: one forward/backward at w,
        ``before_update`` (which may edit the gradient), the update. With
        fp16 the gradient stays scaled for the scaler's step. ``sam`` as
        in ``StepResult``."""
        losses, loss = self.pass_at(closure, ctx)
        return self._after_one_pass(losses, loss, ctx, before_update, sam=sam)

    def one_pass_step(
        self,
        losses: Dict[str, torch.Tensor],
        ctx: StepContext,
        before_update: Optional[Callable[[StepContext], None]] = None,
        after_update: Optional[Callable[[StepContext], None]] = None,
        sam: Optional[bool] = False,
    ) -> StepResult:
        """Backward of the per-sample ``losses`` (computed at w), then,
        unless fp16 overflowed, ``before_update``, the update and
        ``after_update`` (a method's state: a teacher, stored outputs)."""
        loss = self.loss(losses, ctx, 'at w')
        backward(weighted(loss, ctx.weights.get('first')).mean(), ctx.scaler)
        return self._after_one_pass(
            _detached(losses),
            loss.detach(),
            ctx,
            before_update,
            after_update,
            sam,
        )

    def _after_one_pass(
        self,
        losses,
        loss,
        ctx,
        before_update=None,
        after_update=None,
        sam=False,
    ) -> StepResult:
        skipped = self.overflowed(ctx)
        if before_update is not None and not skipped:
            before_update(ctx)
        self.apply(ctx)  # on an overflow the scaler skips and backs off
        if after_update is not None and not skipped:
            after_update(ctx)
        return StepResult(
            losses=losses, loss_before=loss, skipped=skipped, sam=sam
        )

    def state_dict(self) -> dict:
        return {'num_steps': self.num_steps}

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])

"""Per-sample losses summed and checked: a non-finite loss is an error that
names its step, raised at once or at the next deferred check."""

from typing import Dict, List, Optional

import torch


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
            raise FloatingPointError(not_finite(step, name, where, mean))
        total = value if total is None else total + value
    if total is None:
        raise ValueError('the closure returned no losses')
    return total


def not_finite(step: int, name: str, where: str, mean: float) -> str:
    return (
        f"step {step}: loss '{name}' {where} is not finite ({mean}); lower "
        'the learning rate or rho, or check the data'
    )


class FiniteCheck:
    """When a non-finite loss is caught.

    ``'every_step'``: each pass reads a flag on the host and raises at
    once (free on a CPU, a stall of the launch queue on a GPU).
    ``'deferred'``: the first non-finite loss (step, name, mean) is recorded
    on the device and read every ``every`` steps (SharpnessAwareStateHook
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
                raise FloatingPointError(not_finite(step, name, where, mean))
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
            not_finite(int(step), name, where, mean)
            + f' (deferred check of steps {covered[0]}-{covered[1]}: the '
            f'steps after {int(step)} ran on, so the weights, optimizer '
            f'state and scores are those after step {covered[1]}; resume '
            f'from a checkpoint saved before step {int(step)})'
        )

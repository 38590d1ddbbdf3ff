"""Per-sample importance scores (ADLP, Eq. 6) in plain PyTorch."""

from typing import Dict, Optional

import torch


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host-to-GPU copy that does not block the host (pinned, async)."""
    if device.type == 'cuda' and t.device.type == 'cpu':
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class ScoreTable:
    """Dense table of ADLP scores indexed by dataset index.

    ``average='mean'`` keeps the cumulative mean of DLP over the times a sample
    was selected (Eq. 6): a running sum and a count per index, O(D) memory.
    ``average='ema'`` keeps an exponential moving average instead, seeded by
    the first observation; ``average='last'`` keeps the latest observation.
    Indices that were never scored read as NaN.

    With ``num_samples`` given the table has a fixed size and an index outside
    it is an error; without it the table grows to the largest index seen.
    """

    AVERAGES = ('mean', 'ema', 'last')

    def __init__(
        self,
        num_samples: Optional[int] = None,
        average: str = 'mean',
        ema_momentum: float = 0.1,
    ):
        if average not in self.AVERAGES:
            raise ValueError(
                f'score average must be one of {self.AVERAGES}, '
                f'got {average!r}'
            )
        if not 0.0 < ema_momentum <= 1.0:
            raise ValueError(
                f'ema_momentum must be in (0, 1], got {ema_momentum}'
            )
        if num_samples is not None and num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        self.average = average
        self.ema_momentum = ema_momentum
        self.fixed_size = num_samples is not None
        size = num_samples or 0
        # float64: a cumulative sum over 200 epochs must not lose precision.
        self.value = torch.zeros(size, dtype=torch.float64)
        self.count = torch.zeros(size, dtype=torch.int64)

    def __len__(self) -> int:
        return self.value.numel()

    @property
    def device(self) -> torch.device:
        return self.value.device

    def to(self, device) -> 'ScoreTable':
        """Keep the table on ``device`` (the training device: lookups and
        updates then never leave it). A no-op when it is there."""
        device = torch.device(device)
        if self.value.device != device:
            self.value = self.value.to(device)
            self.count = self.count.to(device)
        return self

    def _check(self, idx: torch.Tensor) -> torch.Tensor:
        """Range-check indices on the host (growing the table if it is not
        fixed) and return them on the table's device."""
        idx = torch.as_tensor(idx, dtype=torch.int64).flatten()
        host = idx.cpu()
        if host.numel():
            lo, hi = int(host.min()), int(host.max())
            if lo < 0:
                raise IndexError(
                    f'sample_idx {lo} is negative: sample_idx must '
                    'be the dataset index of each sample'
                )
            if hi >= len(self):
                if self.fixed_size:
                    raise IndexError(
                        f'sample_idx {hi} is outside the score table of '
                        f'{len(self)} samples: set num_samples to the length '
                        'of the training dataset (or leave it None to grow)'
                    )
                self._grow(hi + 1)
        return to_device(idx, self.device)

    def _grow(self, size: int) -> None:
        # Next power of two: amortised O(1), and the size depends only on the
        # largest index seen, so data-parallel ranks stay identical.
        self._resize(1 << (size - 1).bit_length())

    def _resize(self, size: int) -> None:
        value = self.value.new_zeros(size)
        count = self.count.new_zeros(size)
        n = min(size, len(self))
        value[:n], count[:n] = self.value[:n], self.count[:n]
        self.value, self.count = value, count

    def fix_size(self, num_samples: int) -> None:
        """Size the table to the dataset (e.g. once the Runner knows it);
        from then on an index outside it is an error."""
        if self.count[num_samples:].any():
            raise ValueError(
                f'the score table holds scores for indices >= {num_samples}: '
                'it was built for a larger dataset'
            )
        self._resize(num_samples)
        self.fixed_size = True

    def scores(self, idx: torch.Tensor) -> torch.Tensor:
        """ADLP of each index (float64, CPU); NaN where never scored."""
        return self.lookup(self._check(idx)).cpu()

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """``scores`` of range-checked indices on the table's device,
        without a host round trip (the selection's path)."""
        count = self.count[idx]
        value = self.value[idx]
        if self.average == 'mean':
            value = value / count.clamp_min(1)
        return torch.where(count > 0, value, torch.full_like(value, torch.nan))

    def counts(self, idx: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Times each index was scored (a CPU copy, int64); all when None."""
        if idx is None:
            return self.count.to('cpu', copy=True)
        return self.count[self._check(idx)].cpu()

    def update(
        self,
        idx: torch.Tensor,
        dlp: torch.Tensor,
        weight: Optional[torch.Tensor] = None,
        checked: bool = False,
    ) -> None:
        """Fold one DLP observation per index into the table (Eq. 6).

        ``weight`` (0 or 1 per entry) drops padding entries; ``checked``
        skips the host range check for indices already checked (on the
        device that check would stall the step)."""
        if not checked:
            idx = self._check(idx)
        dlp = torch.as_tensor(dlp).detach().flatten()
        dlp = dlp.to(self.device, torch.float64)
        if idx.numel() != dlp.numel():
            raise ValueError(f'{idx.numel()} indices but {dlp.numel()} scores')
        if weight is None:
            weight = torch.ones_like(idx)
        # The same index can appear twice in one update (e.g. a distributed
        # sampler pads the last batch by repeating samples): fold duplicates
        # through dense sums, in order of appearance, so the result does not
        # depend on a host-side unique().
        total = torch.zeros_like(self.value).index_add_(0, idx, dlp)
        if self.average == 'mean':
            new = self.value[idx] + total[idx]
        else:
            # Observations per index, only the EMA needs them.
            n = torch.zeros_like(self.count).index_add_(0, idx, weight)
            obs = total[idx] / n[idx]
            old = self.value[idx]
            # 'last': the newest observation replaces the score.
            m = 1.0 if self.average == 'last' else self.ema_momentum
            new = torch.where(
                self.count[idx] > 0, (1 - m) * old + m * obs, obs
            )
            new = torch.where(n[idx] > 0, new, old)  # padding only
        # Duplicates write the same value, so the order does not matter.
        self.value[idx] = new
        self.count.index_add_(0, idx, weight)

    def stats(self) -> Dict[str, float]:
        """Summary of the scored entries, for logs."""
        seen = self.count > 0
        out = {'scored_frac': float(seen.float().mean()) if len(self) else 0.0}
        if seen.any():
            s = self.lookup(torch.nonzero(seen).flatten())
            out.update(
                score_mean=float(s.mean()),
                score_std=float(s.std()) if s.numel() > 1 else 0.0,
                score_min=float(s.min()),
                score_max=float(s.max()),
            )
        return out

    def state_dict(self) -> dict:
        """CPU copies, so a checkpoint loads on any device."""
        return {
            'average': self.average,
            'ema_momentum': self.ema_momentum,
            'fixed_size': self.fixed_size,
            'value': self.value.to('cpu', copy=True),
            'count': self.count.to('cpu', copy=True),
        }

    def load_state_dict(self, state: dict) -> None:
        """Load a table saved on any device onto this table's device."""
        if state['average'] != self.average:
            raise ValueError(
                f'checkpoint scores were averaged with {state["average"]!r} '
                f'but this run uses score_average={self.average!r}'
            )
        value, count = state['value'], state['count']
        if self.fixed_size and value.numel() != len(self):
            raise ValueError(
                f'checkpoint score table has {value.numel()} entries but '
                f'num_samples is {len(self)}: the training dataset changed'
            )
        self.value = value.to(self.device, torch.float64, copy=True)
        self.count = count.to(self.device, torch.int64, copy=True)

"""SAF: sharpness-aware training for free, against each sample's own past
outputs.

Du et al. 2022b, "Sharpness-Aware Training for Free" (NeurIPS 2022),
Sec. 4.2.
"""

from typing import Optional

import torch

from ..exchange import gather_rows
from ..step import Closure, Method, StepContext, StepResult
from .mesa import check_kl_settings, check_outputs, trajectory_kl


class SAF(Method):
    """SAF (Du et al. 2022b) around any torch optimizer: one
    forward/backward per step, no teacher.

    Every step records each sample's outputs (by its dataset index); from
    ``start_epoch`` on, a sample seen in epoch e gets the trajectory loss
    against its own outputs recorded in epoch e - ``lag`` (the paper's
    E~),

        l_i + kl_weight tau^2 KL(softmax(y_i^(e - lag)/tau) ||
                                 softmax(f_w(x_i)/tau)).

    A sample with no record from that epoch gets no KL term. Defaults:
    kl_weight (lambda) 0.3, temperature 5, start_epoch (E_start) 5, lag 3,
    the authors' SAF settings; the authors' code adds the term when
    ``epoch > E_start``, here from epoch ``start_epoch`` (0-based) on.

    Extra memory: the output table, (lag + 1) x num_samples x outputs
    float32 on the CPU (80 MB for CIFAR-100), saved in checkpoints. Under
    DDP every rank gathers all ranks' records, so each holds the full
    table.
    """

    no_accumulation = (
        "SAF's KL term needs the whole batch's outputs in one backward, "
        "so a cycle's micro-batches would all be alive at once (no memory "
        'saved), and DDP allows one forward per backward'
    )

    needs = frozenset({'sample_idx', 'outputs'})

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        num_samples: Optional[int] = None,
        lag: int = 3,
        kl_weight: float = 0.3,
        temperature: float = 5.0,
        start_epoch: int = 5,
    ):
        super().__init__(optimizer)
        if int(lag) != lag or lag < 1:
            raise ValueError(
                f'lag (E~, epochs between a record and its use) must be an '
                f'integer >= 1, got {lag}'
            )
        check_kl_settings(kl_weight, temperature, start_epoch)
        if num_samples is not None and num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        self.lag, self.kl_weight = int(lag), float(kl_weight)
        self.temperature, self.start_epoch = temperature, start_epoch
        self.num_samples = num_samples
        # outputs[slot, i]: sample i's outputs of epoch recorded[slot, i],
        # slot = epoch % (lag + 1); recorded -1 = never.
        self.outputs: Optional[torch.Tensor] = None
        self.recorded: Optional[torch.Tensor] = None

    def fix_size(self, num_samples: int) -> None:
        """Size the output table to the dataset (as AUSAM's score table):
        from then on an index outside it is an error."""
        if self.num_samples is None:
            self.num_samples = int(num_samples)
            if self.outputs is not None:
                self._resize(self.num_samples)

    def _table_for(self, idx: torch.Tensor, shape) -> None:
        need = int(idx.max()) + 1 if len(idx) else 0
        if self.num_samples is not None and need > self.num_samples:
            raise IndexError(
                f'sample_idx {need - 1} is outside the output table of '
                f'{self.num_samples} samples: num_samples must be the '
                'dataset size'
            )
        if self.outputs is None:
            slots = self.lag + 1
            self.outputs = torch.zeros(slots, 0, *shape)
            self.recorded = torch.full((slots, 0), -1, dtype=torch.long)
            self._resize(self.num_samples or _grown(need))
        elif tuple(self.outputs.shape[2:]) != tuple(shape):
            raise ValueError(
                f'outputs of shape {tuple(shape)} per sample, but the table '
                f'holds {tuple(self.outputs.shape[2:])}'
            )
        elif need > self.outputs.shape[1]:
            self._resize(_grown(need))

    def _resize(self, size: int) -> None:
        """The table with ``size`` rows, the recorded ones kept."""
        if self.recorded[:, size:].ge(0).any():
            raise ValueError(
                f'the output table holds records for indices >= {size}: it '
                'was built for a larger dataset'
            )
        slots, n = self.lag + 1, min(size, self.outputs.shape[1])
        outputs = self.outputs.new_zeros(slots, size, *self.outputs.shape[2:])
        recorded = self.recorded.new_full((slots, size), -1)
        outputs[:, :n], recorded[:, :n] = (
            self.outputs[:, :n],
            self.recorded[:, :n],
        )
        self.outputs, self.recorded = outputs, recorded

    def past_outputs(self, idx: torch.Tensor, epoch: int):
        """(outputs recorded in ``epoch``, whether there is one) of the
        samples ``idx``."""
        slot = epoch % (self.lag + 1)
        valid = self.recorded[slot, idx] == epoch
        return self.outputs[slot, idx], valid

    def record(self, idx: torch.Tensor, outputs: torch.Tensor, epoch: int):
        idx, outputs = gather_rows(idx, outputs.detach().float())
        self._table_for(idx, outputs.shape[1:])
        slot = epoch % (self.lag + 1)
        self.outputs[slot, idx] = outputs.cpu()
        self.recorded[slot, idx] = epoch

    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        idx = torch.as_tensor(ctx.sample_idx, dtype=torch.int64).cpu()
        epoch = int(ctx.epoch)
        losses, outputs = closure(None, with_outputs=True)
        check_outputs(outputs)
        self._table_for(idx, outputs.shape[1:])
        past = epoch - self.lag
        if self.kl_weight > 0 and epoch >= self.start_epoch and past >= 0:
            target, valid = self.past_outputs(idx, past)
            kl = trajectory_kl(
                outputs, target.to(outputs.device), self.temperature
            )
            kl = kl * valid.to(kl.device, kl.dtype)
            losses = dict(losses, loss_kl=self.kl_weight * kl)

        def record(_):  # after an applied update only
            self.record(idx, outputs, epoch)

        return self.one_pass_step(losses, ctx, after_update=record, sam=None)

    def state_dict(self) -> dict:
        return {
            'num_steps': self.num_steps,
            'outputs': self.outputs,
            'recorded': self.recorded,
        }

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])
        if state.get('outputs') is not None:
            self.outputs = state['outputs'].detach().clone().cpu()
            self.recorded = state['recorded'].detach().clone().cpu()


def _grown(size: int) -> int:
    # Next power of two, as the score table: amortised O(1), and the same
    # on every data-parallel rank.
    return 1 << max(size - 1, 0).bit_length()

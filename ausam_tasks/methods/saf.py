"""SAF: sharpness-aware training for free, against each sample's own past
outputs.

Du et al. 2022b, "Sharpness-Aware Training for Free" (NeurIPS 2022),
Sec. 4.2.
"""

from typing import Iterable, Optional

import torch
import torch.distributed as dist
from torch import nn

from ..sam import SAM, StepResult, _distributed, backward, total_loss
from .mesa import _check_outputs, trajectory_kl


class SAF(SAM):
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

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        num_samples: Optional[int] = None,
        lag: int = 3,
        kl_weight: float = 0.3,
        temperature: float = 5.0,
        start_epoch: int = 5,
    ):
        super().__init__(optimizer, rho=0.0)
        if int(lag) != lag or lag < 1:
            raise ValueError(
                f'lag (E~, epochs between a record and its use) must be an '
                f'integer >= 1, got {lag}'
            )
        if kl_weight < 0:
            raise ValueError(
                f'kl_weight (lambda) must be >= 0, got {kl_weight}'
            )
        if not temperature > 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        if start_epoch < 0:
            raise ValueError(f'start_epoch must be >= 0, got {start_epoch}')
        if num_samples is not None and num_samples < 1:
            raise ValueError(f'num_samples must be >= 1, got {num_samples}')
        self.lag, self.kl_weight = int(lag), float(kl_weight)
        self.temperature, self.start_epoch = temperature, start_epoch
        self.num_samples = num_samples
        # outputs[slot, i]: sample i's outputs of epoch recorded[slot, i],
        # slot = epoch % (lag + 1); recorded -1 = never.
        self.outputs: Optional[torch.Tensor] = None
        self.recorded: Optional[torch.Tensor] = None

    def _table_for(self, idx: torch.Tensor, shape) -> None:
        need = int(idx.max()) + 1 if len(idx) else 0
        if self.num_samples is not None and need > self.num_samples:
            raise IndexError(
                f'sample_idx {need - 1} is outside the output table of '
                f'{self.num_samples} samples: num_samples must be the '
                'dataset size'
            )
        size = self.num_samples or need
        slots = self.lag + 1
        if self.outputs is None:
            self.outputs = torch.zeros(slots, size, *shape)
            self.recorded = torch.full((slots, size), -1, dtype=torch.long)
        elif tuple(self.outputs.shape[2:]) != tuple(shape):
            raise ValueError(
                f'outputs of shape {tuple(shape)} per sample, but the table '
                f'holds {tuple(self.outputs.shape[2:])}'
            )
        elif need > self.outputs.shape[1]:  # grow with the largest index
            grow = need - self.outputs.shape[1]
            self.outputs = torch.cat(
                [self.outputs, torch.zeros(slots, grow, *shape)], 1
            )
            self.recorded = torch.cat(
                [self.recorded, torch.full((slots, grow), -1)], 1
            )

    def past_outputs(self, idx: torch.Tensor, epoch: int):
        """(outputs recorded in ``epoch``, whether there is one) of the
        samples ``idx``."""
        slot = epoch % (self.lag + 1)
        valid = self.recorded[slot, idx] == epoch
        return self.outputs[slot, idx], valid

    def record(self, idx: torch.Tensor, outputs: torch.Tensor, epoch: int):
        idx, outputs = _gather_rows(idx, outputs.detach().float())
        self._table_for(idx, outputs.shape[1:])
        slot = epoch % (self.lag + 1)
        self.outputs[slot, idx] = outputs.cpu()
        self.recorded[slot, idx] = epoch

    def step(
        self,
        closure,
        sample_idx: Iterable[int],
        epoch: float = 0.0,
        model: Optional[nn.Module] = None,
        scaler=None,
        update=None,
    ) -> StepResult:
        update = update or self.optimizer.step
        step = self.num_steps
        self.num_steps += 1
        idx = torch.as_tensor(sample_idx, dtype=torch.int64).cpu()
        epoch = int(epoch)
        losses, outputs = closure(None, with_outputs=True)
        _check_outputs(outputs, outputs)
        self._table_for(idx, outputs.shape[1:])
        past = epoch - self.lag
        if self.kl_weight > 0 and epoch >= self.start_epoch and past >= 0:
            target, valid = self.past_outputs(idx, past)
            kl = trajectory_kl(
                outputs, target.to(outputs.device), self.temperature
            )
            kl = kl * valid.to(kl.device, kl.dtype)
            losses = dict(losses, loss_kl=self.kl_weight * kl)
        loss = total_loss(losses, step, 'at w', scaler is None, self.finite)
        backward(loss.mean(), scaler)
        update()
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss.detach()
        skipped = not bool(torch.isfinite(loss).all())
        if not skipped:
            self.record(idx, outputs, epoch)
        result = StepResult(
            losses={k: v.detach() for k, v in losses.items()},
            loss_before=loss,
            skipped=skipped,
        )
        return self._checked(step, result)

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


def _gather_rows(idx: torch.Tensor, rows: torch.Tensor):
    """All ranks' (index, outputs) pairs, so every rank keeps the same
    table."""
    if not _distributed():
        return idx, rows
    device = (
        torch.device('cuda', torch.cuda.current_device())
        if dist.get_backend() == 'nccl'
        else torch.device('cpu')
    )
    shape = rows.shape[1:]
    flat = rows.reshape(len(rows), -1)
    n = torch.tensor([len(idx)], device=device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    width = int(max(s.item() for s in sizes))
    # Indices are exact in float64 up to 2**53.
    packed = torch.zeros(width, 1 + flat.shape[1], dtype=torch.float64)
    packed[: len(idx), 0] = idx.double()
    packed[: len(idx), 1:] = flat.double().cpu()
    packed = packed.to(device)
    parts = [torch.empty_like(packed) for _ in sizes]
    dist.all_gather(parts, packed)
    allp = torch.cat([p[: int(s.item())].cpu() for p, s in zip(parts, sizes)])
    return allp[:, 0].round().long(), allp[:, 1:].float().reshape(-1, *shape)

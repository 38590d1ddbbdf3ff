"""MESA: sharpness-aware training for free, with an EMA teacher.

Du et al. 2022b, "Sharpness-Aware Training for Free" (NeurIPS 2022),
Sec. 4.3 (MESA, the memory-efficient variant of SAF).
"""

import contextlib
from typing import Dict, Iterator, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..step import Closure, Method, StepContext, StepResult


def trajectory_kl(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Per-sample tau^2 KL(softmax(teacher/tau) || softmax(student/tau)),
    the trajectory loss of SAF/MESA. Softmax over the last dimension;
    any other non-batch dimensions (e.g. pose keypoints) are summed."""
    tau = float(temperature)
    log_s = F.log_softmax(student.float() / tau, dim=-1)
    log_t = F.log_softmax(teacher.detach().float() / tau, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).flatten(1).sum(1)
    return kl * tau**2


class MESA(Method):
    """MESA (Du et al. 2022b) around any torch optimizer: one
    forward/backward of the model plus one forward of the teacher.

    The teacher is an exponential moving average of the model (its
    parameters and floating-point buffers), updated after every step,

        v_t = decay v_{t-1} + (1 - decay) w_t,

    and run in eval mode on the same batch. From ``start_epoch`` on, each
    sample's loss gets the trajectory loss

        l_i + kl_weight tau^2 KL(softmax(f_v(x_i)/tau) ||
                                 softmax(f_w(x_i)/tau)),

    which penalises sudden drops of the loss along the trajectory, SAF's
    replacement of SAM's sharpness term. Defaults: kl_weight (lambda) 0.8,
    temperature 5, start_epoch (E_start) 5 as in the authors' MESA
    command; decay 0.9995 (their ImageNet command keeps timm's 0.9998).
    The authors' code adds the term when ``epoch > E_start``; here from
    epoch ``start_epoch`` (0-based) on.

    The closure must accept ``with_outputs=True`` and return
    ``(losses, outputs)`` with per-sample outputs (logits) of shape
    (n, ..., classes) (``needs``). Extra memory: the teacher (one copy of
    the weights and buffers) and, for its forward, a transient copy of the
    model's.
    """

    no_accumulation = (
        "MESA's KL term needs the whole batch's outputs in one backward, "
        "so a cycle's micro-batches would all be alive at once (no memory "
        'saved), and DDP allows one forward per backward'
    )

    needs = frozenset({'outputs', 'model'})

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        decay: float = 0.9995,
        kl_weight: float = 0.8,
        temperature: float = 5.0,
        start_epoch: float = 5,
    ):
        super().__init__(optimizer)
        if not 0.0 <= decay < 1.0:
            raise ValueError(
                f'decay must be in [0, 1) (the EMA teacher keeps decay of '
                f'itself per step; 0 copies the model), got {decay}'
            )
        check_kl_settings(kl_weight, temperature, start_epoch)
        self.decay, self.kl_weight = float(decay), float(kl_weight)
        self.temperature, self.start_epoch = temperature, start_epoch
        self.teacher: Optional[Dict[str, torch.Tensor]] = None

    # --- the teacher --------------------------------------------------
    @staticmethod
    def _tracked(model: nn.Module) -> Dict[str, torch.Tensor]:
        """The model's parameters and floating-point buffers, by name."""
        named = list(model.named_parameters()) + list(model.named_buffers())
        return {n: t for n, t in named if t.is_floating_point()}

    def _teacher_for(self, model: nn.Module) -> List[torch.Tensor]:
        if model is None:
            raise ValueError('MESA needs the model to keep its EMA teacher')
        live = self._tracked(model)
        if self.teacher is None:  # v_0 = w_0
            self.teacher = {n: t.detach().clone() for n, t in live.items()}
        if self.teacher.keys() != live.keys():
            raise KeyError(
                "the EMA teacher's entries do not match the model's: "
                f'missing {sorted(live.keys() - self.teacher.keys())}, '
                f'unexpected {sorted(self.teacher.keys() - live.keys())}; '
                'was the checkpoint saved with another model?'
            )
        for n, t in live.items():  # e.g. after loading a CPU checkpoint
            v = self.teacher[n]
            if v.device != t.device or v.dtype != t.dtype:
                self.teacher[n] = v.to(t.device, t.dtype)
        return [self.teacher[n] for n in live]

    @torch.no_grad()
    def update_teacher(self, model: nn.Module) -> None:
        """v <- decay v + (1 - decay) w."""
        ema = self._teacher_for(model)
        live = [t.detach() for t in self._tracked(model).values()]
        torch._foreach_mul_(ema, self.decay)
        torch._foreach_add_(ema, live, alpha=1.0 - self.decay)

    @contextlib.contextmanager
    def teacher_weights(self, model: nn.Module) -> Iterator[None]:
        """The model in eval mode with the teacher's weights inside; its
        own weights and mode (bit-exact) after."""
        ema = self._teacher_for(model)
        live = list(self._tracked(model).values())
        with torch.no_grad():
            saved = [t.detach().clone() for t in live]
            torch._foreach_copy_(live, ema)
        training = model.training
        model.eval()
        try:
            yield
        finally:
            model.train(training)
            with torch.no_grad():
                torch._foreach_copy_(live, saved)

    # --- the step -----------------------------------------------------
    def rule(self, closure: Closure, ctx: StepContext) -> StepResult:
        model = ctx.model
        self._teacher_for(model)
        if self.kl_weight > 0 and int(ctx.epoch) >= self.start_epoch:
            # The teacher's forward runs in eval mode, so the closure keeps
            # the model's own forward for its logged extras.
            with self.teacher_weights(model), torch.no_grad():
                _, target = closure(None, with_outputs=True)
            losses, outputs = closure(None, with_outputs=True)
            check_outputs(outputs, target)
            kl = trajectory_kl(outputs, target, self.temperature)
            losses = dict(losses, loss_kl=self.kl_weight * kl)
        else:
            losses = closure(None)
        # The EMA step follows an applied update only (not an fp16 skip).
        return self.one_pass_step(
            losses,
            ctx,
            after_update=lambda c: self.update_teacher(model),
            sam=None,
        )

    def state_dict(self) -> dict:
        return {'num_steps': self.num_steps, 'teacher': self.teacher}

    def load_state_dict(self, state: dict) -> None:
        self.num_steps = int(state['num_steps'])
        if state.get('teacher') is not None:
            self.teacher = {
                n: t.detach().clone() for n, t in state['teacher'].items()
            }


def check_kl_settings(kl_weight, temperature, start_epoch) -> None:
    """The settings of the KL term MESA and SAF add."""
    if kl_weight < 0:
        raise ValueError(f'kl_weight (lambda) must be >= 0, got {kl_weight}')
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if start_epoch < 0:
        raise ValueError(f'start_epoch must be >= 0, got {start_epoch}')


def check_outputs(outputs, target=None) -> None:
    """Per-sample outputs (n, ..., classes), shaped as ``target`` if any."""
    if not isinstance(outputs, torch.Tensor) or outputs.dim() < 2:
        raise ValueError(
            'SAF and MESA need per-sample outputs of shape (n, ..., classes) '
            'from closure(..., with_outputs=True), got '
            f'{getattr(outputs, "shape", type(outputs).__name__)}'
        )
    if target is not None and outputs.shape != target.shape:
        raise ValueError(
            f'student outputs {tuple(outputs.shape)} and teacher outputs '
            f'{tuple(target.shape)} differ'
        )

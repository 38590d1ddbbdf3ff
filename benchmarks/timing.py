"""Shared parts of the step-time benchmarks: one step function per method,
round-robin timing, and the table / JSON report. Plain PyTorch."""

import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import common  # noqa: F401  (the repository on sys.path)
import torch

from ausam_tasks.methods import ESAM, KSAM, MESA, MSAM, RST, SAF, LookSAM
from ausam_tasks.sam import AUSAM, SAM


def method_steps(
    model: torch.nn.Module,
    base_name: str,
    make_base: Callable[[], torch.optim.Optimizer],
    closure,
    idx: torch.Tensor,
    alphas: Sequence[float],
    dataset_size: int,
    rho: float = 0.05,
    outputs_closure=None,
) -> Dict[str, Callable]:
    """Step functions for the base optimizer, SAM and AUSAM at each alpha.

    ``closure(pos)`` returns per-sample losses of the batch positions ``pos``
    (None: the whole batch), as ``ausam_tasks.sam`` expects. With
    ``outputs_closure`` (``closure(pos, with_outputs=True)`` gives
    ``(losses, logits)``) MESA and SAF are timed too.
    """
    base = make_base()

    def plain_step():
        base.zero_grad(set_to_none=True)
        sum(v.mean() for v in closure(None).values()).backward()
        base.step()

    sam = SAM(make_base(), rho=rho)
    steps = {
        base_name: plain_step,
        'SAM': lambda: sam.step(closure, model=model),
    }
    for alpha in alphas:
        opt = AUSAM(
            make_base(),
            rho=rho,
            alpha=alpha,
            s_min=0.1,
            s_max=0.5,
            warmup_epochs=0,
            init_epochs=0,
            num_samples=dataset_size,
        )
        # Steady state: every sample already has a score.
        opt.table.update(torch.arange(dataset_size), torch.rand(dataset_size))
        steps[f'AUSAM-{alpha}'] = lambda o=opt: o.step(
            closure, idx, epoch=10, model=model
        )
    # ESAM with the paper's beta 0.6, gamma 0.5; MSAM with its rho 3;
    # MESA past its start epoch (teacher forward + KL every step).
    esam = ESAM(make_base(), rho=rho, beta=0.6, gamma=0.5)
    steps['ESAM'] = lambda: esam.step(closure, model=model)
    msam = MSAM(make_base(), rho=3.0)
    steps['MSAM'] = lambda: msam.step(closure, model=model)
    if outputs_closure is not None:
        mesa = MESA(make_base(), start_epoch=0)
        steps['MESA'] = lambda: mesa.step(outputs_closure, model, epoch=1.0)
        # SAF in steady state: epoch 1 against the outputs of epoch 0.
        saf = SAF(make_base(), num_samples=dataset_size, lag=1, start_epoch=0)
        saf.step(outputs_closure, idx, epoch=0.0, model=model)
        steps['SAF'] = lambda: saf.step(
            outputs_closure, idx, epoch=1.0, model=model
        )
    for alpha in alphas:
        if alpha < 1.0:
            ksam = KSAM(make_base(), rho=rho, alpha=alpha)
            steps[f'K-SAM-{alpha}'] = lambda o=ksam: o.step(closure, model)
    # Methods that mix SAM and one-pass steps are timed over several steps
    # per call (a LookSAM cycle; RST's draws) and reported per step.
    looksam = LookSAM(make_base(), rho=rho, k=5)
    steps['LookSAM-5'] = per_step(
        lambda: looksam.step(closure, model=model), looksam.k
    )
    rst = RST(make_base(), rho=rho, p_start=0.5)
    steps['RST-0.5'] = per_step(lambda: rst.step(closure, model=model), 4)
    return steps


def per_step(step: Callable, n: int) -> Callable:
    """``step`` run ``n`` times per call; timing divides by n."""

    def run():
        for _ in range(n):
            step()

    run.steps_per_call = n
    return run


def time_round_robin(
    steps: Dict[str, Callable],
    warmup: int,
    repeats: int,
    device: torch.device,
    on_step: Optional[Callable[[str, int, float], None]] = None,
) -> Dict[str, List[float]]:
    """Seconds per step of each method. Methods take turns, so a drift in
    the machine's speed hits all of them alike. ``on_step(name, round,
    seconds)`` is called after every call, warm-up included (a caller can
    save progress, e.g. before a time limit cuts a slow compile short)."""
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    times = {name: [] for name in steps}
    for rep in range(warmup + repeats):
        for name, step in steps.items():
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            n = getattr(step, 'steps_per_call', 1)
            seconds = (time.perf_counter() - t0) / n
            if rep >= warmup:
                times[name].append(seconds)
            if on_step is not None:
                on_step(name, rep, seconds)
        print(f'round {rep + 1}/{warmup + repeats} done', file=sys.stderr)
    return times


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return (
        f'{platform.processor() or platform.machine()}, '
        f'{torch.get_num_threads()} threads'
    )


def report(
    times: Dict[str, List[float]], title: str, out: str, **meta
) -> List[dict]:
    """Print a markdown table of median step times with SAM% (SAM's time /
    the method's) and write it, with ``meta``, as JSON to ``out``."""
    sam = statistics.median(times['SAM'])
    rows = [
        dict(
            method=name,
            median_s=statistics.median(t),
            sam_pct=100 * sam / statistics.median(t),
            times_s=t,
        )
        for name, t in times.items()
    ]
    print(f'\n{title}\n')
    print('| method | median step (ms) | SAM% |')
    print('| --- | ---: | ---: |')
    for r in rows:
        print(
            f'| {r["method"]} | {1000 * r["median_s"]:.1f} | '
            f'{r["sam_pct"]:.0f}% |'
        )
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            dict(
                date=datetime.now(timezone.utc).isoformat(timespec='minutes'),
                torch=torch.__version__,
                rows=rows,
                **meta,
            ),
            indent=2,
        )
    )
    print(f'\nwrote {path}')
    return rows

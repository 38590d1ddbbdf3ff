"""The matrix: each cell in its own process, one per slot."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO

from .cell import cell_name

PACKAGE = Path(__file__).resolve().parent  # run as: python benchmarks/study


def launch(args, preset_name, cells, out: Path) -> None:
    """Each cell in its own process; one slot per --devices entry, per
    --cpus entry, or --jobs unpinned slots."""
    if args.devices:
        slots = [('device', d) for d in args.devices.split(',')]
    elif args.cpus:
        slots = [('cpu', c) for c in args.cpus.split(',')]
    else:
        slots = [(None, None)] * args.jobs
    free = list(range(len(slots)))
    import threading

    lock = threading.Lock()

    def one(cell):
        method, seed = cell
        with lock:
            slot = free.pop()
        kind, value = slots[slot]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        cmd = [sys.executable, str(PACKAGE), '--preset', preset_name]
        cmd += ['--cell', method, str(seed), '--out', str(out)]
        cmd += overrides(args)
        device = value if kind == 'device' else args.device
        if device == 'cpu':
            env['CUDA_VISIBLE_DEVICES'] = ''
        elif device and device.startswith('cuda:'):
            env['CUDA_VISIBLE_DEVICES'] = device.split(':', 1)[1]
        if kind == 'cpu':
            cmd = ['taskset', '-c', value] + cmd
        log = out / 'work_dirs' / f'{cell_name(method, seed)}.log'
        log.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        with open(log, 'a') as f:
            rc = subprocess.run(cmd, env=env, stdout=f, stderr=f).returncode
        with lock:
            free.append(slot)
        status = 'done' if rc == 0 else f'FAILED (exit {rc}, see {log})'
        print(
            f'{cell_name(method, seed)}: {status} in '
            f'{time.perf_counter() - t:.0f} s',
            flush=True,
        )
        return rc

    with ThreadPoolExecutor(len(slots)) as pool:
        codes = list(pool.map(one, cells))
    if any(codes):
        raise SystemExit(f'{sum(c != 0 for c in codes)} cell(s) failed')


def overrides(args) -> list:
    out = []
    if args.epochs is not None:
        out += ['--epochs', str(args.epochs)]
    if args.limit_train is not None:
        out += ['--limit-train', str(args.limit_train)]
    if args.limit_holdout is not None:
        out += ['--limit-holdout', str(args.limit_holdout)]
    if args.diagnostics is not None:
        out += ['--diagnostics', str(args.diagnostics)]
    if args.label_noise is not None:
        out += ['--label-noise', str(args.label_noise)]
    return out

"""Run a test worker on two gloo ranks with torchrun."""

import os
import subprocess
import sys
from pathlib import Path

import torch


def torchrun_two_ranks(worker: Path, out: Path, *args: str, timeout=300):
    """Run ``worker out *args`` on 2 ranks; fail with its stderr."""
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--standalone',
            '--nproc_per_node',
            '2',
            str(worker),
            str(out),
            *args,
        ],
        env=dict(os.environ, OMP_NUM_THREADS='1'),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def run_two_ranks(worker: Path, out: Path, *args: str, timeout=300):
    """``torchrun_two_ranks``, then what each rank saved as
    ``out/rank0.pt`` and ``out/rank1.pt``."""
    torchrun_two_ranks(worker, out, *args, timeout=timeout)
    return torch.load(out / 'rank0.pt'), torch.load(out / 'rank1.pt')

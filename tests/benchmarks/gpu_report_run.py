"""Run benchmarks/gpu_report.py as the GPU check does and read its report."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def gpu_report(runs: Path, out: Path, *args: str) -> str:
    """The markdown ``gpu_report.py RUNS OUT ARGS`` writes (gpu_check.md)."""
    subprocess.run(
        [
            sys.executable,
            str(ROOT / 'benchmarks' / 'gpu_report.py'),
            str(runs),
            str(out),
            *args,
        ],
        check=True,
        capture_output=True,
    )
    return (out / 'gpu_check.md').read_text()

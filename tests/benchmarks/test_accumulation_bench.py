"""benchmarks/accumulation.py end to end at a tiny batch: every setting's
row and the gloo local / global times are written."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_writes_both_parts(tmp_path):
    out = tmp_path / 'acc.json'
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / 'benchmarks' / 'accumulation.py'),
            *('--batch', '8', '--steps', '1', '--threads', '1', '--cpu'),
            *('--out', str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r['setting'] for r in result['part1']] == [
        'batch B',
        'accumulative_counts=4 (B/4 each)',
        'micro_batch_size=B/4',
    ]
    assert all(r['peak_mib'] > 0 and r['step_s'] > 0 for r in result['part1'])
    assert set(result['ddp_step_s']) == {'global', 'local'}
    assert '| micro_batch_size=B/4 |' in proc.stdout

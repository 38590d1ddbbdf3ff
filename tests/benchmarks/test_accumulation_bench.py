"""benchmarks/accumulation.py end to end at a tiny batch: every setting's
row and the gloo local / global times are written."""

import json

from . import run_benchmark


def test_smoke_run_writes_both_parts(tmp_path):
    out = tmp_path / 'acc.json'
    proc = run_benchmark(
        'accumulation.py',
        *('--batch', '8', '--steps', '1', '--threads', '1', '--cpu'),
        *('--out', str(out)),
    )
    result = json.loads(out.read_text())
    assert [r['setting'] for r in result['part1']] == [
        'batch B',
        'accumulative_counts=4 (B/4 each)',
        'micro_batch_size=B/4',
    ]
    assert all(r['peak_mib'] > 0 and r['step_s'] > 0 for r in result['part1'])
    assert set(result['ddp_step_s']) == {'global', 'local'}
    assert '| micro_batch_size=B/4 |' in proc.stdout

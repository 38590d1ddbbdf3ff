"""benchmarks/runner_epoch_time.py end to end on a few real CIFAR-10 JPEGs:
the InfoBatch rows train a whole first epoch, then pruned ones."""

import json

from . import run_benchmark


def test_smoke_run_writes_every_method_row(tmp_path, cifar10_archive):
    out = tmp_path / 'epoch_time.json'
    methods = 'SGD,SGD-per-sample,SGD+Info,SAM,SAM+Info'
    proc = run_benchmark(
        'runner_epoch_time.py',
        *('--images', '100', '--batch-size', '20', '--workers', '0'),
        *('--model', 'resnet20-w8', '--epochs', '3'),
        *('--methods', methods, '--out', str(out)),
    )
    rows = {r['method']: r for r in json.loads(out.read_text())['rows']}
    assert list(rows) == methods.split(',')
    for name, r in rows.items():
        assert len(r['epochs_s']) == 3 and r['steady_epoch_s'] > 0
        assert r['epoch_samples'][0] == r['images'] == 100
        pruned = any(n < 100 for n in r['epoch_samples'][1:])
        assert pruned == name.endswith('+Info'), (name, r['epoch_samples'])
    assert rows['SAM']['sam_pct'] == 100
    assert '| SAM+Info |' in proc.stdout

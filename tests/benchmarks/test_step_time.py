"""benchmarks/step_time.py writes its JSON as it goes: a run cut short
(as by the device call's time limit) leaves the steps timed so far, and
the GPU check's report reads such a partial run."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.benchmarks.gpu_report_run import gpu_report

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'benchmarks'))  # step_time imports timing
_spec = importlib.util.spec_from_file_location(
    'step_time', ROOT / 'benchmarks' / 'step_time.py'
)
step_time = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step_time)

ARGV = [
    '--model',
    'resnet20-w8',
    '--batch-sizes',
    '4',
    '--steps',
    '2',
    '--warmup',
    '1',
    '--alphas',
    '0.5',
    '--methods',
    'SGD,SAM,AUSAM-0.5',
    '--threads',
    '1',
]


def test_complete_run_json(tmp_path):
    out = tmp_path / 'st.json'
    step_time.main(ARGV + ['--out', str(out)])
    run = json.loads(out.read_text())
    assert run['complete'] is True
    (batch,) = run['batches']
    assert batch['complete'] is True
    assert [r['method'] for r in batch['rows']] == ['SGD', 'SAM', 'AUSAM-0.5']
    # One warm-up call each (it holds a compile's time), two timed steps.
    assert {m: len(s) for m, s in batch['warmup_s'].items()} == {
        'SGD': 1,
        'SAM': 1,
        'AUSAM-0.5': 1,
    }
    for row in batch['rows']:
        assert len(row['times_s']) == 2
        assert row['sam_pct'] == pytest.approx(
            100 * batch['rows'][1]['median_s'] / row['median_s']
        )


def test_a_run_cut_short_leaves_what_it_timed(tmp_path, monkeypatch):
    """Stopped after the first timed step of SGD and SAM (round 2 of 3):
    the JSON on disk holds those two, SAM% from them, and says it is
    partial; the report shows it."""
    real = step_time.time_round_robin
    calls = []

    def cut(steps, warmup, repeats, device, on_step=None):
        def counting(name, rnd, seconds):
            on_step(name, rnd, seconds)
            calls.append(name)
            if len(calls) == 5:  # 3 warm-up calls, then SGD and SAM
                raise KeyboardInterrupt  # as the time limit's signal would

        return real(steps, warmup, repeats, device, on_step=counting)

    monkeypatch.setattr(step_time, 'time_round_robin', cut)
    runs = tmp_path / 'runs'
    out = runs / 'step_resnet20-w8-bf16-cl-compile.json'
    with pytest.raises(KeyboardInterrupt):
        step_time.main(ARGV + ['--out', str(out)])
    run = json.loads(out.read_text())
    assert run['complete'] is False
    (batch,) = run['batches']
    assert batch['complete'] is False
    rows = {r['method']: r for r in batch['rows']}
    assert sorted(rows) == ['SAM', 'SGD']
    assert all(len(r['times_s']) == 1 for r in rows.values())
    assert rows['SAM']['sam_pct'] == 100
    assert rows['SGD']['sam_pct'] == pytest.approx(
        100 * rows['SAM']['times_s'][0] / rows['SGD']['times_s'][0]
    )
    assert sorted(batch['warmup_s']) == ['AUSAM-0.5', 'SAM', 'SGD']

    (runs / 'status.tsv').write_text('resnet20-w8-bf16-cl-compile\t124\t9\n')
    md = gpu_report(runs, tmp_path / 'out')
    assert 'Cut short by the time limit' in md
    assert '| SGD |' in md and '| AUSAM-0.5 |' not in md


def test_headline_takes_the_fastest_of_eager_and_compiled():
    """SAM% of the headline: SAM's fastest bf16 step over AUSAM-0.5's,
    each the faster of its eager and compiled runs; fp32 runs ignored."""
    import gpu_report

    def run(dtype, compile, sam_ms, ausam_ms):
        rows = [
            dict(method='SAM', median_s=sam_ms / 1000),
            dict(method='AUSAM-0.5', median_s=ausam_ms / 1000),
        ]
        return dict(
            options=dict(model='resnet18', dtype=dtype, compile=compile),
            batches=[dict(batch_size=128, rows=rows)],
        )

    steps = {
        'resnet18-bf16-cl': run('bfloat16', False, 20.0, 16.0),
        'resnet18-bf16-cl-compile': run('bfloat16', True, 12.0, 10.0),
        'resnet18-fp32': run('float32', False, 1.0, 1.0),
    }
    (row,) = [r for r in gpu_report.headline(steps) if '| resnet18 |' in r]
    assert row == '| resnet18 | 20.0 | 12.0 | 16.0 | 10.0 | 120% |'

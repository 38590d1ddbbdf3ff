"""benchmarks/fastpath.py in its smoke mode end to end (the fast-path config
through the Runner on CPU), its progress carried over a resume, and the
GPU check's report of it."""

import importlib.util
import json
import sys
from pathlib import Path

from tests.benchmarks.gpu_report_run import gpu_report

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'benchmarks'))  # fastpath.py imports common
_spec = importlib.util.spec_from_file_location(
    'fastpath', ROOT / 'benchmarks' / 'fastpath.py'
)
fastpath = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fastpath)


def test_smoke_run_resume_and_report(tmp_path, monkeypatch):
    from tasks.classification.data_prep import (
        synthetic_images,
        write_cifar_pickles,
    )

    imgs, labels = synthetic_images(28, 10, seed=1)
    cifar10_root = tmp_path / 'cifar10'
    write_cifar_pickles(
        cifar10_root, imgs[:20], labels[:20], 'cifar10', imgs[20:], labels[20:]
    )
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')  # restored afterwards
    argv = [
        '--smoke',
        '--data-root',
        str(cifar10_root),
        '--batch-size',
        '8',
        '--work-dir',
        str(tmp_path / 'work'),
        '--out',
        str(tmp_path / 'runs' / 'fastpath.json'),
    ]
    first = fastpath.main(argv)
    assert first['finished'] and first['epochs'] == first['max_epochs'] == 2
    assert len(first['epoch_s']) == 2
    assert (first['train_images'], first['holdout_images']) == (20, 8)
    assert first['dtype'] == 'bfloat16'
    assert first['compile']['backend'] == 'aot_eager'
    assert first['compile']['mark_steps'] is True
    # validated once, after the last epoch (val_interval 10 > 2 epochs)
    assert [e for e, _ in first['holdout_curve']] == [2]
    saved = json.loads((tmp_path / 'runs' / 'fastpath.json').read_text())
    assert saved['epoch_s'] == first['epoch_s']

    # A rerun with --resume starts from the last checkpoint (nothing left
    # to train) and still reports every epoch of the first call.
    again = fastpath.main(argv + ['--resume'])
    assert again['epoch_s'] == first['epoch_s']
    assert again['holdout_curve'][0] == first['holdout_curve'][0]

    runs = tmp_path / 'runs'
    (runs / 'status.tsv').write_text(
        'nosync\t0\t3\ncudagraphs\t0\t2\nfastpath\t0\t40\n'
    )
    (runs / 'nosync.txt').write_text('PASS ausam-cpu\n')
    (runs / 'cudagraphs.txt').write_text('2 skipped in 0.5s\n')
    md = gpu_report(
        runs, tmp_path / 'out', '--budget', '420', '--elapsed', '50'
    )
    assert '### Fast path: configs/classification/resnet18_ausam' in md
    assert '| 2/2 |' in md and '2 skipped in 0.5s' in md
    assert 'PASS ausam-cpu' in md and 'Extrapolated' not in md
    report = json.loads((tmp_path / 'out' / 'gpu_check.json').read_text())
    assert report['fastpath']['epoch_s'] == first['epoch_s']
    assert report['tests']['nosync'] == ['PASS ausam-cpu']


def test_stop_after_keeps_the_schedule_and_extrapolates(tmp_path, monkeypatch):
    """--stop-after 3 of a 5-epoch schedule: the cosine schedule stays 5
    epochs long, 3 are trained, and the JSON and report extrapolate the
    whole schedule from them (first epoch + median steady epoch x 4 + the
    measured validation x 1)."""
    from tasks.classification.data_prep import (
        synthetic_images,
        write_cifar_pickles,
    )

    args = fastpath.parse_args(
        ['--smoke', '--epochs', '5', '--stop-after', '3']
    )
    cfg = fastpath.build_cfg(args, tmp_path)
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.param_scheduler[0].T_max == cfg.param_scheduler[0].end == 5

    imgs, labels = synthetic_images(20, 10, seed=1)
    root = tmp_path / 'cifar10'
    write_cifar_pickles(
        root, imgs[:12], labels[:12], 'cifar10', imgs[12:], labels[12:]
    )
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    runs = tmp_path / 'runs'
    run = fastpath.main(
        [
            '--smoke',
            '--epochs',
            '5',
            '--stop-after',
            '3',
            '--data-root',
            str(root),
            '--batch-size',
            '4',
            '--work-dir',
            str(tmp_path / 'work'),
            '--out',
            str(runs / 'fastpath.json'),
        ]
    )
    assert run['finished'] and run['epochs'] == 3
    assert run['schedule_epochs'] == 5
    (val_s,) = run['val_s']  # after the last epoch trained
    e = run['epoch_s']
    assert run['extrapolated_s'] == e[0] + e[2] * 4 + val_s
    (runs / 'status.tsv').write_text('fastpath\t0\t30\n')
    md = gpu_report(runs, tmp_path / 'out')
    assert 'stopped after 3 of 5 epochs' in md and '| 3/5 |' in md
    assert 'Extrapolated, not measured:** all 5 epochs' in md


def test_stop_after_out_of_range_is_an_error(capsys):
    for bad in ('0', '201'):
        try:
            fastpath.parse_args(['--stop-after', bad])
        except SystemExit as err:
            assert err.code == 2
        else:
            raise AssertionError(f'--stop-after {bad} was accepted')
        assert 'FASTPATH_EPOCHS' in capsys.readouterr().err

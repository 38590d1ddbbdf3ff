"""The study harness: cell configs, a tiny study end to end on the real
CIFAR-10 JPEGs (resume-skipping, the report against the cell JSONs), and the
report's statistics against hand-computed values."""

import importlib
import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'benchmarks'))  # the study package, common
import study  # noqa: E402  (benchmarks/study/)


def table_rows(md: str, header_start: str) -> list:
    """The rows of the markdown table whose header starts with the text."""
    lines = md.splitlines()
    start = next(
        i for i, ln in enumerate(lines) if ln.startswith(header_start)
    )
    rows = []
    for ln in lines[start + 2 :]:
        if not ln.startswith('|'):
            break
        rows.append([c.strip() for c in ln.strip('|').split('|')])
    return rows


def test_cell_config_composes_base_method_and_seed(tmp_path):
    preset = study.PRESETS['cpu-100e']
    cfg = study.cell_config(preset, 'AUSAM-0.5-EMA', 3, tmp_path, tmp_path)
    ow = cfg.optim_wrapper
    assert ow.type == 'AUSAMOptimWrapper'
    assert ow.score_average == 'ema' and ow.ema_momentum == 0.1
    assert ow.warmup_epochs == 15  # 15% of 100 epochs, as 30 of 200
    assert ow.seed == 3 and cfg.randomness.seed == 3
    assert ow.optimizer.lr == 0.1 and ow.optimizer.weight_decay == 5e-4
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path)
    assert cfg.test_dataloader.dataset.split == 'train'
    assert cfg.val_dataloader.dataset.split == 'test'
    cfg = study.cell_config(
        study.PRESETS['cpu'], 'AUSAM-0.5', 0, tmp_path, tmp_path
    )
    assert cfg.optim_wrapper.warmup_epochs == 22  # round(0.15 * 150)
    assert cfg.param_scheduler[0].T_max == 150
    sgd = study.cell_config(preset, 'SGD', 0, tmp_path, tmp_path)
    assert sgd.optim_wrapper.type == 'OptimWrapper'
    assert 'seed' not in sgd.optim_wrapper and 'rho' not in sgd.optim_wrapper

    paper = study.PRESETS['gpu-paper']
    cfg = study.cell_config(paper, 'SAM+Random-0.5', 1, tmp_path, tmp_path)
    assert cfg.train_cfg.max_epochs == 200
    assert cfg.param_scheduler[0].T_max == 200
    assert cfg.optim_wrapper.selector == 'uniform'
    assert cfg.optim_wrapper.init_epochs == 0
    aug = cfg.model.data_preprocessor.batch_augment
    assert aug.cutout_size == 16
    assert cfg.train_dataloader.dataset.download is False


def test_every_method_builds_its_wrapper(tmp_path):
    """Each method's cell config names a registered wrapper whose settings
    are accepted, with run fractions resolved and the cell's seed."""
    from mmengine.optim import build_optim_wrapper
    from torch import nn

    preset = study.PRESETS['cpu']
    assert set(study.CHEAP_BASELINES) <= set(preset['methods'])
    for method in study.METHODS:
        cfg = study.cell_config(preset, method, 4, tmp_path, tmp_path)
        wrapper = build_optim_wrapper(nn.Linear(2, 2), cfg.optim_wrapper)
        assert type(wrapper).__name__ == study.METHODS[method]['type']
    late = study.cell_config(preset, 'Late-SAM-0.8', 0, tmp_path, tmp_path)
    assert late.optim_wrapper.start_epoch == 120  # 80% of 150 epochs
    rst = study.cell_config(preset, 'RST-0.5', 4, tmp_path, tmp_path)
    assert rst.optim_wrapper.seed == 4
    probe = study.PRESETS['cpu-probe']
    assert probe['config'] == preset['config']
    assert probe['epochs'] == preset['epochs']


def test_only_the_main_schedule_follows_the_run_length(tmp_path):
    """A warm-up keeps its epochs; the schedule that ran to the base
    config's end is stretched (and its T_max shortened by its begin)."""
    base = ROOT / study.PRESETS['cpu']['config']
    leaf = tmp_path / 'warmup.py'
    leaf.write_text(
        f"_base_ = ['{base}']\n"
        'param_scheduler = [\n'
        "    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,"
        ' end=5),\n'
        "    dict(type='CosineAnnealingLR', T_max=145, by_epoch=True, begin=5,"
        ' end=150),\n'
        ']\n'
    )
    preset = dict(study.PRESETS['cpu'], config=str(leaf), epochs=50)
    cfg = study.cell_config(preset, 'SGD', 0, tmp_path, tmp_path)
    warmup, main = cfg.param_scheduler
    assert (warmup.begin, warmup.end) == (0, 5)
    assert (main.begin, main.end, main.T_max) == (5, 50, 45)


def test_run_fractions_are_resolved_at_any_depth(tmp_path, monkeypatch):
    frac = study.RunFraction
    nested = dict(a=[frac(0.5), dict(b=frac(0.1))], c=(frac(1.0), 3))
    assert study.resolve_spec(nested, 40) == dict(a=[20, dict(b=4)], c=(40, 3))
    monkeypatch.setitem(
        study.METHODS,
        'Nested',
        dict(
            type='SAMOptimWrapper',
            rho=0.05,
            clip_grad=dict(max_norm=frac(0.1)),
        ),
    )
    cfg = study.cell_config(
        study.PRESETS['cpu'], 'Nested', 0, tmp_path, tmp_path
    )
    assert cfg.optim_wrapper.clip_grad.max_norm == 15  # 10% of 150 epochs


def test_infobatch_methods_get_the_sampler_and_hooks(tmp_path):
    preset = study.PRESETS['cpu-noise20']
    assert set(study.TABLE5_METHODS) <= set(preset['methods'])
    cfg = study.cell_config(preset, 'SAM+Info', 0, tmp_path, tmp_path)
    assert cfg.train_dataloader.sampler.type == 'InfoBatchSampler'
    assert cfg.default_hooks.param_scheduler.type == (
        'InfoBatchParamSchedulerHook'
    )
    assert {'type': 'InfoBatchHook'} in cfg.custom_hooks
    sam = study.cell_config(preset, 'SAM', 0, tmp_path, tmp_path)
    assert sam.train_dataloader.sampler.type == 'DefaultSampler'
    from ausam_tasks.engine.infobatch import check_infobatch_config

    check_infobatch_config(cfg)


def test_unknown_method_fails_early():
    with pytest.raises(SystemExit, match='unknown method.*known: SGD'):
        study.main(['--preset', 'tiny', '--methods', 'SGDD'])


def test_paired_statistics_against_hand_computation(tmp_path):
    def cell(method, seed, acc, train_s):
        return dict(
            method=method,
            seed=seed,
            holdout_top1=acc,
            train_top1=99.0,
            train_s=train_s,
        )

    cells = [
        cell('SAM', 0, 70.0, 200.0),
        cell('SAM', 1, 72.0, 200.0),
        cell('SAM', 2, 71.0, 200.0),
        cell('AUSAM-0.5', 0, 69.0, 100.0),
        cell('AUSAM-0.5', 1, 72.0, 100.0),
        cell('AUSAM-0.5', 2, 70.0, 100.0),
        cell('AUSAM-0.5', 3, 90.0, 100.0),  # no SAM partner: not paired
    ]
    rows = {r['method']: r for r in study.summarize(cells, ['SAM'])}
    r = rows['AUSAM-0.5']
    # diffs -1, 0, -1: mean -2/3, sd sqrt(1/3), se 1/3, t(0.975, 2) 4.3027
    assert r['diff_sam_n'] == 3
    assert r['diff_sam'] == pytest.approx(-2 / 3)
    assert r['diff_sam_se'] == pytest.approx(1 / 3)
    assert r['diff_sam_ci'] == pytest.approx(4.302653 / 3, rel=1e-6)
    assert r['holdout_mean'] == pytest.approx((69 + 72 + 70 + 90) / 4)
    assert r['sam_pct'] == pytest.approx(200.0)
    assert rows['SAM']['sam_pct'] == pytest.approx(100.0)
    assert math.isnan(study.t_interval([1.0])[2])


def test_tiny_study_end_to_end(tmp_path, capsys, cifar10_archive):
    out, docs = tmp_path / 'cells', tmp_path / 'docs'
    args = ['--preset', 'tiny', '--out', str(out)]
    study.main(args)
    paths = sorted(out.glob('*.json'))
    assert [p.name for p in paths] == [
        'AUSAM-0.5_seed0.json',
        'SGD_seed0.json',
    ]
    cells = {json.loads(p.read_text())['method']: p for p in paths}
    for method, path in cells.items():
        c = json.loads(path.read_text())
        assert c['epochs'] == 2 and len(c['epoch_s']) == 2
        assert [e for e, _ in c['holdout_curve']] == [1, 2]
        assert c['holdout_top1'] == c['holdout_curve'][-1][1]
        assert c['train_images'] == 40 and c['holdout_images'] == 20
        assert 0 <= c['train_top1'] <= 100
        assert c['total_s'] > c['train_with_val_s'] > c['train_s'] > 0
        assert c['optim_wrapper']['type'] == study.METHODS[method]['type']
    assert (
        json.loads(cells['AUSAM-0.5'].read_text())['optim_wrapper']['seed']
        == 0
    )

    # Resume: a finished cell is skipped (its file untouched); a missing one
    # runs again, here from its last checkpoint, and still reports every
    # epoch's time and evaluation.
    ausam = json.loads(cells['AUSAM-0.5'].read_text())
    sgd = json.loads(cells['SGD'].read_text())
    sgd['marker'] = 'kept'
    cells['SGD'].write_text(json.dumps(sgd))
    cells['AUSAM-0.5'].unlink()
    capsys.readouterr()
    study.main(args)
    printed = capsys.readouterr().out
    assert '1 cell(s) to run' in printed and 'AUSAM-0.5_seed0: done' in printed
    assert json.loads(cells['SGD'].read_text())['marker'] == 'kept'
    again = json.loads(cells['AUSAM-0.5'].read_text())
    assert (
        again['resumed_from_epoch'] == 2 and ausam['resumed_from_epoch'] == 0
    )
    assert again['epoch_s'] == ausam['epoch_s']
    assert again['holdout_curve'] == ausam['holdout_curve']
    assert again['train_top1'] == ausam['train_top1']
    study.main(args)
    assert '0 cell(s) to run' in capsys.readouterr().out

    # The report's tables hold the cells' own numbers.
    study.main(args + ['--report', '--docs', str(docs)])
    md = (docs / 'tiny.md').read_text()
    assert (docs / 'tiny.png').stat().st_size > 0
    summary = {r[0]: r for r in table_rows(md, '| method | seeds |')}
    seeds = {r[0]: r for r in table_rows(md, '| method | seed |')}
    assert list(summary) == ['SGD', 'AUSAM-0.5']  # the preset's order
    for method, path in cells.items():
        c = json.loads(path.read_text())
        mean, std = re.match(
            r'([\d.]+) ± ([\d.]+)', summary[method][2]
        ).groups()
        assert float(mean) == pytest.approx(c['holdout_top1'], abs=0.005)
        assert float(std) == 0.0
        assert float(summary[method][5]) == pytest.approx(
            c['train_top1'], abs=0.005
        )
        assert summary[method][3].startswith('n/a')  # no SAM cells
        assert float(seeds[method][2]) == pytest.approx(
            c['holdout_top1'], abs=0.005
        )
        assert float(seeds[method][3]) == pytest.approx(
            c['train_top1'], abs=0.005
        )
    assert f'`benchmarks/study {" ".join(args)} --report --docs' in md

    # A cell of a seed outside the preset's stays out of its report, and
    # --seeds reports it under its own name.
    extra = json.loads(cells['SGD'].read_text())
    extra.update(seed=3, holdout_top1=extra['holdout_top1'] + 10)
    (out / 'SGD_seed3.json').write_text(json.dumps(extra))
    study.main(args + ['--report', '--docs', str(docs)])
    assert (docs / 'tiny.md').read_text() == md
    study.main(args + ['--seeds', '0', '3', '--report', '--docs', str(docs)])
    md3 = (docs / 'tiny-seeds0-3.md').read_text()
    seeds3 = [(r[0], r[1]) for r in table_rows(md3, '| method | seed |')]
    assert seeds3 == [('SGD', '0'), ('SGD', '3'), ('AUSAM-0.5', '0')]
    assert '(seeds 0, 3)' in md3


def test_diagnostics_cell_records_the_hook_scalars(tmp_path, cifar10_archive):
    out = tmp_path / 'cells'
    study.main(
        ['--preset', 'tiny', '--methods', 'AUSAM-0.5', '--diagnostics', '1']
        + ['--out', str(out)]
    )
    c = json.loads((out / 'AUSAM-0.5_seed0.json').read_text())
    assert [row['epoch'] for row in c['diagnostics']] == [1, 2]
    for row in c['diagnostics']:
        assert -1 <= row['diag/dlp_spearman'] <= 1
        assert row['diag/grad_norm_mean'] > 0
    assert 'SelectionDiagnosticsHook' in c['config']
    assert (out / 'AUSAM-0.5_seed0.png').stat().st_size > 0
    docs = tmp_path / 'docs'
    study.main(
        ['--preset', 'tiny', '--diagnostics', '1', '--out', str(out)]
        + ['--report', '--docs', str(docs)]
    )
    md = (docs / 'tiny-diagnostics.md').read_text()
    rows = {r[0]: r for r in table_rows(md, '| epoch |')}
    assert list(rows) == ['1', '2', 'mean']
    col = 1 + [
        k for k, _ in importlib.import_module('study.report').DIAGNOSTICS
    ].index('adlp_spearman')
    for row in c['diagnostics']:
        assert float(rows[str(row['epoch'])][col]) == pytest.approx(
            row['diag/adlp_spearman'], abs=5e-4
        )
    mean = sum(r['diag/adlp_spearman'] for r in c['diagnostics']) / 2
    assert float(rows['mean'][col]) == pytest.approx(mean, abs=5e-4)
    with pytest.raises(SystemExit, match='--diagnostics'):
        study.main(['--preset', 'tiny', '--diagnostics', '0'])


@pytest.mark.slow
def test_gpu_paper_smoke_on_cpu(tmp_path, cifar10_archive):
    """Two epochs of one gpu-paper cell (ResNet-18, Cutout) on the CPU."""
    study.main(
        ['--preset', 'gpu-paper', '--methods', 'SAM', '--seeds', '0']
        + ['--epochs', '2', '--limit-train', '250', '--limit-holdout', '100']
        + ['--device', 'cpu', '--out', str(tmp_path)]
    )
    c = json.loads((tmp_path / 'SAM_seed0.json').read_text())
    assert c['epochs'] == 2 and c['train_images'] == 250
    assert c['holdout_images'] == 100
    assert c['optim_wrapper']['type'] == 'SAMOptimWrapper'
    assert 'resnet18' in c['config'] and 'cutout_size=16' in c['config']


def test_jpg_split_is_disjoint_and_holdout_fixed(cifar10_archive):
    from tasks.classification.data_prep import cifar10_jpg_split

    small = cifar10_jpg_split(cifar10_archive, 2, 3, seed=0)
    big = cifar10_jpg_split(cifar10_archive, 4, 3, seed=0)
    xtr, ytr, xho, yho = small
    assert xtr.shape == (20, 32, 32, 3) and xho.shape == (30, 32, 32, 3)
    assert (ytr == [c for c in range(10) for _ in range(2)]).all()
    # The held-out images do not depend on the training-set size, and a
    # smaller training set is a per-class prefix of a larger one.
    assert (big[2] == xho).all() and (big[3] == yho).all()
    assert (big[0].reshape(10, 4, -1)[:, :2] == xtr.reshape(10, 2, -1)).all()
    held = {x.tobytes() for x in xho}
    assert not any(x.tobytes() in held for x in big[0])


def test_symmetric_label_noise_flips_exactly_the_fraction():
    import numpy as np

    from tasks.classification.data_prep import symmetric_label_noise

    labels = np.repeat(np.arange(10), 30)
    noisy, flipped = symmetric_label_noise(labels, 0.2, 10, seed=0)
    assert len(flipped) == 60 and len(set(flipped.tolist())) == 60
    changed = np.nonzero(noisy != labels)[0]
    assert changed.tolist() == flipped.tolist()  # every flip lands elsewhere
    assert noisy.min() >= 0 and noisy.max() <= 9
    again, _ = symmetric_label_noise(labels, 0.2, 10, seed=0)
    assert (again == noisy).all()
    # Each other class is equally likely: over many flips of class 0, the
    # nine targets are near uniform.
    zeros = np.zeros(90_000, dtype=np.int64)
    many, _ = symmetric_label_noise(zeros, 0.5, 10, seed=1)
    counts = np.bincount(many[many != 0], minlength=10)[1:]
    assert counts.sum() == 45_000 and abs(counts / 5000 - 1).max() < 0.06
    with pytest.raises(ValueError, match='label_noise'):
        symmetric_label_noise(labels, 1.0, 10)
    with pytest.raises(ValueError, match='flips no label'):
        symmetric_label_noise(labels, 0.001, 10)


def test_prepare_data_label_noise_flips_only_training_labels(
    cifar10_archive, tmp_path, monkeypatch
):
    import pickle

    monkeypatch.setenv('AUSAM_DATA_ROOT', str(cifar10_archive.parents[1]))

    def batches(root):
        folder = root / 'cifar-10-batches-py'
        train = []
        for f in sorted(folder.glob('data_batch_*')):
            train += pickle.loads(f.read_bytes())['labels']
        test = pickle.loads((folder / 'test_batch').read_bytes())['labels']
        return train, test

    clean = study.prepare_data(5, 2, cache_root=tmp_path)
    noisy = study.prepare_data(5, 2, 0.2, cache_root=tmp_path)
    assert clean != noisy and 'noise20' in noisy.name
    (ctr, cte), (ntr, nte) = batches(clean), batches(noisy)
    assert cte == nte  # held-out labels stay clean
    listed = json.loads((noisy / 'noisy_indices.json').read_text())
    assert [i for i in range(50) if ctr[i] != ntr[i]] == listed['indices']
    assert listed['clean_labels'] == [ctr[i] for i in listed['indices']]
    assert len(listed['indices']) == 10
    # A cache whose flip list has an older format is rebuilt, not reused.
    (noisy / 'noisy_indices.json').write_text(json.dumps(listed['indices']))
    assert study.prepare_data(5, 2, 0.2, cache_root=tmp_path) == noisy
    assert json.loads((noisy / 'noisy_indices.json').read_text()) == listed


def test_noisy_cell_reports_what_it_did_with_the_flipped_labels(
    tmp_path, cifar10_archive, monkeypatch
):
    import torch

    methods = ['AUSAM-0.5', 'SAM+Random-0.5', 'SGD']
    out = tmp_path / 'cells'
    study.main(
        ['--preset', 'tiny', '--methods', *methods]
        + ['--label-noise', '0.25', '--out', str(out)]
    )
    cache = study.prepare_data(4, 2, 0.25)  # the cells' cache, made above
    flipped = set(
        json.loads((cache / 'noisy_indices.json').read_text())['indices']
    )
    cells = {}
    for method in methods:
        c = cells[method] = json.loads(
            (out / f'{method}_seed0.json').read_text()
        )
        noise = c['label_noise']
        assert c['preset_settings']['label_noise'] == 0.25
        assert noise['flipped_images'] == 10
        # The evaluator's training-set accuracy (noisy labels) is the
        # weighted mix of the two parts the summary counted itself.
        mix = 30 * noise['clean_train_top1'] + 10 * noise['flipped_fitted_pct']
        assert c['train_top1'] == pytest.approx(mix / 40)
        if method == 'SGD':
            assert 'flipped_mean_rank_pct' not in noise
            continue
        # The table part against the score table in the cell's last
        # checkpoint (the mean average keeps sums and counts), ranked here
        # by hand: never-scored images left out, ties at their mean rank.
        work = out / 'work_dirs' / f'{method}_seed0'
        ckpt = torch.load(
            (work / 'last_checkpoint').read_text().strip(), weights_only=False
        )
        table = ckpt['optimizer']['sharpness_aware']['scores']
        adlp = {
            i: v / n
            for i, (v, n) in enumerate(
                zip(table['value'].tolist(), table['count'].tolist())
            )
            if n
        }
        m = len(adlp)
        rank = {
            i: 1
            + sum(w > v for w in adlp.values())
            + (sum(w == v for w in adlp.values()) - 1) / 2
            for i, v in adlp.items()
        }
        ours = [i for i in adlp if i in flipped]
        assert noise['scored_pct'] == pytest.approx(100 * m / 40)
        assert noise['flipped_mean_rank_pct'] == pytest.approx(
            sum(100 * rank[i] / m for i in ours) / len(ours)
        )
        top = {i for i in adlp if rank[i] <= m / 2}
        assert noise['flipped_share_of_top_half_pct'] == pytest.approx(
            100 * len(top & flipped) / len(top)
        )
    # The uniform draws leave images unscored in two epochs without a
    # scoring epoch; AUSAM's scoring epoch scores them all.
    assert cells['AUSAM-0.5']['label_noise']['scored_pct'] == 100
    assert cells['SAM+Random-0.5']['label_noise']['scored_pct'] < 100
    # The report's table of the flipped labels holds the cells' values.
    docs = tmp_path / 'docs'
    study.main(
        ['--preset', 'tiny', '--methods', *methods, '--out', str(out)]
        + ['--report', '--docs', str(docs)]
    )
    rows = {
        r[0]: r
        for r in table_rows(
            (docs / 'tiny.md').read_text(), '| method | seeds | flipped'
        )
    }
    assert set(rows) == set(methods)
    keys = [
        k for k, _ in importlib.import_module('study.report').NOISE_COLUMNS
    ]
    noise = cells['AUSAM-0.5']['label_noise']
    for i, key in enumerate(keys):
        assert float(rows['AUSAM-0.5'][2 + i]) == pytest.approx(
            noise[key], abs=0.05
        )
    assert rows['SGD'][2 + keys.index('flipped_mean_rank_pct')] == ''
    # An override's cells have their own folder, not the preset's.
    monkeypatch.setattr(importlib.import_module('study.cli'), 'REPO', tmp_path)
    with pytest.raises(SystemExit, match='study/tiny-noise25'):
        study.main(['--preset', 'tiny', '--label-noise', '0.25', '--report'])
    with pytest.raises(SystemExit, match='--label-noise'):
        study.main(['--preset', 'tiny', '--label-noise', '1.5'])

"""SelectionDiagnosticsHook inside a real mmengine Runner."""

import glob
import json
import os.path as osp
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from ausam_tasks.tools.plot_diagnostics import plot
from tests.torchrun import run_two_ranks

from .test_runner import StopAfterEpoch  # noqa: F401  registers the hook
from .toy import runner_cfg

AUSAM = dict(
    type='AUSAMOptimWrapper',
    alpha=0.5,
    rho=0.1,
    init_epochs=1,
    warmup_epochs=2,
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
)
HOOK = dict(type='SelectionDiagnosticsHook', num_probe=12, num_draws=2)


def train(work_dir, optim_wrapper=AUSAM, hooks=(HOOK,), epochs=2, **kw):
    # A unique experiment name: mmengine shares the logger, visualizer and
    # message hub of runners built within the same second otherwise.
    train.runs = getattr(train, 'runs', 0) + 1
    cfg = runner_cfg(
        work_dir,
        optim_wrapper,
        max_epochs=epochs,
        custom_hooks=[dict(h) for h in hooks],
        experiment_name=f'diagnostics_{train.runs}',
        **kw,
    )
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner


def diag_lines(work_dir):
    lines = []
    for path in sorted(glob.glob(osp.join(work_dir, '*/vis_data/*.json'))):
        with open(path) as f:
            lines += [json.loads(x) for x in f if '"diag/' in x]
    return lines


def test_hook_logs_to_message_hub_and_json_and_changes_nothing(tmp_path):
    runner = train(tmp_path / 'diag')
    hub = runner.message_hub.log_scalars
    for key in (
        'dlp_spearman',
        'dlp_pearson',
        'adlp_spearman',
        'err_adlp_w',
        'err_uniform_w',
        'err_adlp_eps',
        'err_uniform_eps',
        'grad_norm_mean',
        'coverage_never_frac',
    ):
        assert 'diag/' + key in hub, key
        assert -1.0 <= float(hub['diag/' + key].current()) < 100, key
    lines = diag_lines(tmp_path / 'diag')
    assert [x['epoch'] for x in lines] == [1, 2]
    assert [x['step'] for x in lines] == [4, 8]  # 64 samples, batch 16
    # Coverage counts from the end of the scoring epoch (init_epochs=1).
    assert 'diag/coverage_never_frac' not in lines[0]
    path = glob.glob(str(tmp_path / 'diag/*/diagnostics/epoch_2.json'))[0]
    with open(path) as f:
        rec = json.load(f)
    assert len(rec['grad_norm']) == len(rec['dlp']) == 12
    assert rec['coverage_since_epoch'] == 1
    # One epoch at alpha = 0.5: 32 of 64 selections.
    hist = rec['coverage_hist']
    assert sum(hist) == 64
    assert sum(c * n for c, n in enumerate(hist)) == 32
    assert lines[1]['diag/coverage_never_frac'] == pytest.approx(hist[0] / 64)
    # Training is bit-identical to a run without the hook.
    plain = train(tmp_path / 'plain', hooks=())
    for (k, a), b in zip(
        runner.model.state_dict().items(), plain.model.state_dict().values()
    ):
        assert torch.equal(a, b), k
    ca, cb = runner.optim_wrapper.core, plain.optim_wrapper.core
    assert torch.equal(ca.table.value, cb.table.value)
    assert torch.equal(ca.table.count, cb.table.count)
    png = plot(str(tmp_path / 'diag'))
    assert osp.getsize(png) > 10_000


def test_coverage_baseline_survives_resume(tmp_path):
    stop = dict(type='StopAfterEpoch', epoch=2)
    train(tmp_path, epochs=3, hooks=(HOOK, stop))
    ckpt = torch.load(tmp_path / 'epoch_2.pth', weights_only=False)
    assert ckpt['selection_diagnostics']['epoch'] == 1
    train(tmp_path, epochs=3, resume=True)
    rec = sorted(glob.glob(str(tmp_path / '*/diagnostics/epoch_3.json')))
    with open(rec[-1]) as f:
        rec = json.load(f)
    assert rec['coverage_since_epoch'] == 1
    assert sum(c * n for c, n in enumerate(rec['coverage_hist'])) == 64


def test_sam_wrapper_skips_the_adlp_parts_with_one_log_line(tmp_path):
    sam = dict(type='SAMOptimWrapper', rho=0.1, optimizer=AUSAM['optimizer'])
    hook = dict(HOOK, alpha=0.5)
    train(tmp_path, sam, hooks=(hook,), epochs=1)
    (line,) = diag_lines(tmp_path)
    assert 'diag/err_uniform_w' in line and 'diag/dlp_spearman' in line
    assert not any('adlp' in k or 'coverage' in k for k in line)
    log = open(glob.glob(str(tmp_path / '*/*.log'))[0]).read()
    assert log.count('keeps no score table') == 1


def test_bad_settings_fail_early_and_name_the_setting(tmp_path):
    for bad, name in (
        (dict(num_probe=1), 'num_probe'),
        (dict(interval=0), 'interval'),
        (dict(num_draws=0), 'num_draws'),
        (dict(alpha=1.5), 'alpha'),
    ):
        with pytest.raises(ValueError, match=name):
            HOOKS.build(dict(HOOK, **bad))
    with pytest.raises(ValueError, match='num_probe=100 is larger'):
        train(tmp_path / 'a', hooks=(dict(HOOK, num_probe=100),))
    sgd = dict(type='OptimWrapper', optimizer=AUSAM['optimizer'])
    with pytest.raises(ValueError, match='has no rho; set rho'):
        train(tmp_path / 'b', sgd)


def test_two_process_ddp_computes_on_rank_0_and_keeps_ranks_identical(
    tmp_path,
):
    worker = Path(__file__).with_name('ddp_diagnostics_worker.py')
    r0, r1 = run_two_ranks(worker, tmp_path)
    for k, v in r0['model'].items():
        assert torch.equal(v, r1['model'][k]), k
    assert torch.equal(r0['count'], r1['count'])
    assert 'diag/dlp_spearman' in r0['diag_keys'] and not r1['diag_keys']
    lines = diag_lines(tmp_path / 'work')
    assert [x['epoch'] for x in lines] == [1, 2]
    assert 'diag/coverage_never_frac' in lines[1]

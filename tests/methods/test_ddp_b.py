"""ESAM, MSAM, MESA and SAF on 2 gloo ranks (torchrun) inside mmengine's
Runner: every step ends with identical weights on both ranks."""

import json
from pathlib import Path

import pytest
import torch

from tests.torchrun import torchrun_two_ranks

SGD = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)
METHODS = {
    'esam': dict(type='ESAMOptimWrapper', rho=0.1, beta=0.5, gamma=0.5),
    'msam': dict(type='MSAMOptimWrapper', rho=0.5),
    'mesa': dict(type='MESAOptimWrapper', decay=0.5, start_epoch=1),
    'saf': dict(type='SAFOptimWrapper', lag=1, start_epoch=1),
}


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    """All methods in one torchrun (one start-up): {method: (r0, r1)}."""
    out = tmp_path_factory.mktemp('ddp_b')
    worker = Path(__file__).with_name('ddp_worker_b.py')
    methods = {k: dict(v, optimizer=SGD) for k, v in METHODS.items()}
    torchrun_two_ranks(worker, out, json.dumps(methods), timeout=600)
    return {
        m: tuple(
            torch.load(out / f'{m}_rank{r}.pt', weights_only=False)
            for r in (0, 1)
        )
        for m in methods
    }


@pytest.mark.parametrize('method', sorted(METHODS))
def test_two_ranks_end_identical(method, ranks):
    r0, r1 = ranks[method]
    assert r0['world'] == 2
    # 64 samples, 2 ranks, batch 8: 4 steps an epoch, 2 epochs.
    assert r0['steps'] == r1['steps'] == 8
    for k, v in r0['params'].items():
        assert torch.equal(v, r1['params'][k]), k
    if method == 'esam':
        # The step's last forward (BN frozen) saw rank 0's broadcast
        # buffers; one-pass methods keep DDP's usual per-rank statistics.
        for k, v in r0['buffers'].items():
            assert torch.equal(v, r1['buffers'][k]), k
        # Both ranks drew the same SWP mask at every step, a new one each.
        assert len(r0['masks']) == 8 and r0['masks'] == r1['masks']
        assert len(set(r0['masks'])) == 8
    if method == 'mesa':
        # The teacher's EMA of the (identical) weights is identical too.
        teacher0, teacher1 = r0['core']['teacher'], r1['core']['teacher']
        for k in r0['params']:
            assert torch.equal(teacher0[k], teacher1[k]), k
        assert not torch.equal(
            teacher0['fc.weight'], r0['params']['fc.weight']
        )
    if method == 'saf':
        # Each rank recorded all 64 samples' outputs in both epochs.
        for key in ('outputs', 'recorded'):
            assert torch.equal(r0['core'][key], r1['core'][key]), key
        assert r0['core']['recorded'].tolist() == [[0] * 64, [1] * 64]

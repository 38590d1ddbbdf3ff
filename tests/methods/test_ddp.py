"""Two gloo ranks under torchrun: every method ends each step with the
same weights on both ranks, and RST's draws agree across ranks."""

from pathlib import Path

import torch

from tests.torchrun import run_two_ranks


def test_two_process_ddp_keeps_ranks_identical_every_step(tmp_path):
    worker = Path(__file__).with_name('ddp_worker.py')
    r0, r1 = run_two_ranks(worker, tmp_path)
    assert r0['world'] == r1['world'] == 2
    for name in ('LookSAM', 'RST', 'LatePhaseSAM', 'KSAM'):
        a, b = r0[name], r1[name]
        # 64 samples, 2 ranks, batch 8: 4 steps per epoch, 2 epochs.
        assert a['weights'].shape[0] == 8, name
        for step, (wa, wb) in enumerate(zip(a['weights'], b['weights'])):
            assert torch.equal(wa, wb), (name, step)
        assert a['sam'] == b['sam'], name
    assert r0['LookSAM']['sam'] == [1, 0, 0, 1, 0, 0, 1, 0]
    assert set(r0['RST']['sam']) == {0.0, 1.0}  # both kinds, same on both
    assert r0['LatePhaseSAM']['sam'] == [0] * 4 + [1] * 4
    assert r0['KSAM']['sam'] == [0.5] * 8

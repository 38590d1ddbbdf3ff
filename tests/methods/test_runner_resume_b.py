"""ESAM, MSAM, MESA and SAF resumed by mmengine's Runner from checkpoint
files: the same weights, bit for bit, as an uninterrupted run."""

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from ..core.test_runner import StopAfterEpoch  # noqa: F401 (registers it)
from ..core.toy import runner_cfg
from .wrappers_b import ToyNetWithOutputs  # noqa: F401 (registers it)

SGD = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)
METHODS = {
    'esam': dict(type='ESAMOptimWrapper', rho=0.1, beta=0.5, gamma=0.5),
    'msam': dict(type='MSAMOptimWrapper', rho=0.5),
    'mesa': dict(type='MESAOptimWrapper', decay=0.5, start_epoch=1),
    'saf': dict(type='SAFOptimWrapper', lag=1, start_epoch=1),
}


def train(work_dir, method, **kw):
    cfg = runner_cfg(
        work_dir,
        dict(METHODS[method], optimizer=SGD),
        max_epochs=3,
        model=dict(type='ToyNetWithOutputs'),
        param_scheduler=[dict(type='CosineAnnealingLR', T_max=3)],
        **kw,
    )
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner


@pytest.mark.parametrize('method', sorted(METHODS))
def test_resume_from_a_checkpoint_file_is_bit_identical(method, tmp_path):
    full = train(tmp_path / 'full', method)
    train(
        tmp_path / 'half',
        method,
        custom_hooks=[dict(type='StopAfterEpoch', epoch=2)],
    )
    resumed = train(tmp_path / 'half', method, resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ca = full.optim_wrapper.core.state_dict()
    cb = resumed.optim_wrapper.core.state_dict()
    assert ca['num_steps'] == cb['num_steps'] == 12
    for key in ('teacher', 'outputs', 'recorded'):
        if key == 'teacher' and ca.get(key) is not None:
            for n in ca[key]:
                assert torch.equal(ca[key][n], cb[key][n]), n
        elif ca.get(key) is not None:
            assert torch.equal(ca[key], cb[key]), key

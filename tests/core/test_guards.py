"""Guards: a misspelt wrapper setting, fp16 on a CPU, a subset of one."""

import warnings

import pytest
from mmengine.optim import build_optim_wrapper

from .toy import ToyDataset, ToyNet, batch


def build(type='AUSAMOptimWrapper', model=None, **kw):
    return build_optim_wrapper(
        model or ToyNet(),
        dict(type=type, optimizer=dict(type='SGD', lr=0.1), **kw),
    )


@pytest.mark.parametrize('kind', ['SAMOptimWrapper', 'AUSAMOptimWrapper'])
def test_unknown_setting_is_reported_against_the_wrapper(kind):
    with pytest.raises(TypeError) as e:
        build(kind, aplha=0.5)
    msg = str(e.value)
    assert msg.startswith(f"{kind} got unknown setting(s) ['aplha']")
    assert 'rho' in msg and 'clip_grad' in msg  # the valid keys
    assert ('alpha' in msg) == (kind == 'AUSAMOptimWrapper')
    assert 'OptimWrapper.__init__' not in msg


def steps(ow, model, n, size=8):
    data = ToyDataset(size=size)
    for _ in range(n):
        model.train_step(batch(data, range(size)), ow)


def test_fp16_on_cpu_warns_once_recommending_bf16():
    model = ToyNet()
    ow = build('SAMOptimWrapper', model=model, dtype='float16')
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        steps(ow, model, 2)
    hits = [w for w in rec if 'bfloat16' in str(w.message)]
    assert len(hits) == 1, [str(w.message) for w in rec]
    model = ToyNet()
    ow = build('SAMOptimWrapper', model=model, dtype='bfloat16')
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        steps(ow, model, 1)
    assert not [w for w in rec if 'bfloat16' in str(w.message)]


@pytest.mark.parametrize('alpha, warns', [(0.1, True), (0.25, False)])
def test_a_subset_below_two_samples_warns_at_the_first_step(alpha, warns):
    model = ToyNet()
    ow = build(model=model, alpha=alpha, init_epochs=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        steps(ow, model, 2)  # 8 samples: 0.1 keeps 1, 0.25 keeps 2
    hits = [w for w in rec if 'keeps 1 of the 8' in str(w.message)]
    assert len(hits) == (1 if warns else 0)

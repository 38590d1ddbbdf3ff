"""One harness for every SAM-family optimizer wrapper in mmengine's
OPTIM_WRAPPERS, in the style of timm's optimizer tests.

Only the public interface is used, so the checks hold across refactors of
the wrappers' internals: ``build_optim_wrapper``, ``model.train_step``
(the log dict), ``state_dict`` / ``load_state_dict``, ``loss_scaler`` and
mmengine's MessageHub runtime info, which drives epoch-dependent methods.
A newly registered wrapper fails the coverage test until it has a line
in CASES and in BAD_SETTINGS.
"""

import io
import itertools
import json
from pathlib import Path

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPERS

import ausam_tasks
from ausam_tasks.engine import SAMOptimWrapper
from tests.core.toy import ToyDataset, batch
from tests.torchrun import torchrun_two_ranks

from .wrappers_b import toy_outputs

SGD = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)
DATASET, BATCH = 32, 16
PER_EPOCH, MAX_EPOCHS = DATASET // BATCH, 8  # epoch = step // 2
STEPS = 6  # epochs 0, 0, 1, 1, 2, 2
DATA = ToyDataset(DATASET, seed=5)

# Settings that reach every kind of step of each method within STEPS steps
# (cf. trajectory.METHODS): epoch 1 (step 2) starts AUSAM's subsets, late-
# phase SAM, MESA's and SAF's KL terms; LookSAM and RST mix SAM and one-
# pass steps (RST seed 1: SAM at steps 0, 2, 3, 4). Every two-pass method
# runs a SAM pass at step 2.
CASES = {
    'SAMOptimWrapper': dict(rho=0.1),
    'AUSAMOptimWrapper': dict(
        alpha=0.5, init_epochs=1, warmup_epochs=1, seed=3, num_samples=32
    ),
    'ESAMOptimWrapper': dict(rho=0.1, beta=0.6, gamma=0.5, seed=2),
    'GRSTOptimWrapper': dict(rho=0.1, alpha=0.8, p_start=0.5, seed=1),
    'KSAMOptimWrapper': dict(rho=0.1, alpha=0.5),
    'LatePhaseSAMOptimWrapper': dict(rho=0.1, start_epoch=1),
    'LookSAMOptimWrapper': dict(rho=0.1, k=2, alpha=0.7),
    'MESAOptimWrapper': dict(decay=0.5, start_epoch=1),
    'MSAMOptimWrapper': dict(rho=0.3),
    'PlainOptimWrapper': dict(),
    'RSTOptimWrapper': dict(rho=0.1, p_start=0.5, seed=1),
    'SAFOptimWrapper': dict(lag=1, start_epoch=1, num_samples=32),
}
# One bad hyper-parameter per wrapper, and what its error must say.
BAD_SETTINGS = {
    'SAMOptimWrapper': (dict(rho=-1.0), r'rho must be >= 0'),
    'AUSAMOptimWrapper': (dict(alpha=1.5), r'alpha must be in \(0, 1\]'),
    'ESAMOptimWrapper': (dict(beta=0.0), r'beta must be in \(0, 1\]'),
    'GRSTOptimWrapper': (dict(alpha=1.5), r'alpha must be in \[0, 1\]'),
    'KSAMOptimWrapper': (dict(alpha=0.0), r'alpha must be in \(0, 1\]'),
    'LatePhaseSAMOptimWrapper': (
        dict(start_epoch=-1),
        r'start_epoch must be >= 0',
    ),
    'LookSAMOptimWrapper': (dict(k=0), r'k must be an integer >= 1'),
    'MESAOptimWrapper': (dict(decay=1.0), r'decay must be in \[0, 1\)'),
    'MSAMOptimWrapper': (dict(rho=-1.0), r'rho must be >= 0'),
    'PlainOptimWrapper': (
        dict(infobatch_pass='second'),
        r"infobatch_pass must be one of \('first',\)",
    ),
    'RSTOptimWrapper': (dict(p_start=2.0), r'p_start is a probability'),
    'SAFOptimWrapper': (dict(lag=0), r'lag .*must be an integer >= 1'),
}
# Methods with one forward/backward per step: no second pass to overflow.
ONE_PASS = {
    'MESAOptimWrapper',
    'MSAMOptimWrapper',
    'PlainOptimWrapper',
    'SAFOptimWrapper',
}
# Methods with one kind of step; CASES makes every other one switch kinds
# (SAM fraction, KL term) within STEPS steps.
ONE_KIND = {
    'ESAMOptimWrapper',
    'KSAMOptimWrapper',
    'MSAMOptimWrapper',
    'PlainOptimWrapper',
    'SAMOptimWrapper',
}
NAMES = sorted(CASES)
TWO_PASS = sorted(set(CASES) - ONE_PASS)

_hub_ids = itertools.count()


@pytest.fixture
def hub():
    """A fresh MessageHub: the current instance, which the wrappers read
    the runtime info from."""
    hub = MessageHub.get_instance(f'test_registry_{next(_hub_ids)}')
    hub.update_info('max_epochs', MAX_EPOCHS)
    hub.update_info('max_iters', MAX_EPOCHS * PER_EPOCH)
    return hub


def build(model, name, **overrides):
    cfg = dict(type=name, optimizer=dict(SGD), **CASES[name])
    cfg.update(overrides)
    return build_optim_wrapper(model, cfg)


def step(model, ow, hub, t, epoch=None, nan=False):
    """Train step ``t`` on the batch of iteration ``t`` with mmengine's
    runtime info of that iteration (``epoch``: override the epoch);
    ``nan``: one sample's inputs are NaN. Returns the log dict."""
    hub.update_info('iter', t)
    hub.update_info('epoch', t // PER_EPOCH if epoch is None else epoch)
    lo = BATCH * (t % PER_EPOCH)
    data = batch(DATA, range(lo, lo + BATCH))
    if nan:
        data['inputs'][1] = data['inputs'][1] * float('nan')
    return model.train_step(data, ow)


def train(name, hub, steps=STEPS, **overrides):
    model = toy_outputs()
    ow = build(model, name, **overrides)
    logs = [step(model, ow, hub, t) for t in range(steps)]
    return model, ow, logs


def params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def round_trip(obj):
    """What a safe checkpoint gives back: torch.save, then torch.load with
    weights_only=True."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def assert_same(a, b, where='state'):
    """Nested dicts / lists of tensors and plain values equal bit for bit
    (NaN equals NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        assert set(a) == set(b), f'{where}: keys {set(a) ^ set(b)} differ'
        for k in a:
            assert_same(a[k], b[k], f'{where}[{k!r}]')
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        same = a == b
        if a.is_floating_point():
            same |= a.isnan() & b.isnan()
        assert bool(same.all()), f'{where} differs'
    else:
        assert a == b, f'{where}: {a!r} != {b!r}'


def skipped(log) -> float:
    return float(log.get('skipped', 0.0))


def method_state(ow):
    """The wrapper's checkpoint state without its loss scaler and step
    counters, as a copy.

    Whether a skipped step counts in the step counter is the
    implementation's choice (today it counts, so RST's, ESAM's and AUSAM's
    seeded draws move on to the next step's stream, as after a real step),
    so 'num_steps' is left out. Everything else must be untouched by a
    skipped step: the base optimizer's state, AUSAM's scores, LookSAM's
    stored component, MESA's teacher, SAF's output table, the seeds."""

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k != 'num_steps'}
        if isinstance(obj, (list, tuple)):
            return [strip(v) for v in obj]
        return obj

    state = dict(ow.state_dict())
    state.pop('loss_scaler', None)
    return round_trip(strip(state))


def sam_family_wrappers() -> dict:
    """{name: class} of the registered SAM-family optimizer wrappers: those
    of this package that run the multi-pass step (a SAMOptimWrapper, or any
    class defining ``update_params_with_closure``, e.g. a new common
    base)."""
    assert ausam_tasks.engine  # imported: the wrappers are registered
    return {
        name: cls
        for name, cls in OPTIM_WRAPPERS.module_dict.items()
        if cls.__module__.startswith('ausam_tasks')
        and (
            issubclass(cls, SAMOptimWrapper)
            or callable(getattr(cls, 'update_params_with_closure', None))
        )
    }


def test_every_registered_sam_family_wrapper_is_covered():
    family = sam_family_wrappers()
    assert 'SAMOptimWrapper' in family
    assert 'AutocastOptimWrapper' in OPTIM_WRAPPERS.module_dict
    assert 'AutocastOptimWrapper' not in family  # one pass, not SAM-family
    missing = sorted(set(family) - set(CASES))
    assert not missing, (
        f'registered SAM-family optimizer wrapper(s) {missing} have no '
        f'entry in CASES of {__file__}: add a line with settings that '
        'exercise the method within a few steps (and one to BAD_SETTINGS)'
    )
    unknown = sorted(set(CASES) - set(family))
    assert not unknown, (
        f'CASES lists {unknown}, which are not registered SAM-family '
        'optimizer wrappers'
    )
    assert set(BAD_SETTINGS) == set(CASES)


@pytest.mark.parametrize('name', NAMES)
def test_steps_change_the_weights_deterministically(name, hub):
    """Two fresh runs give the same weights and logs, bit for bit."""
    initial = toy_outputs().state_dict()
    m1, _, logs1 = train(name, hub)
    m2, _, logs2 = train(name, hub)
    for k, v in m1.named_parameters():
        assert torch.isfinite(v).all() and not torch.equal(v, initial[k]), k
    assert_same(m1.state_dict(), m2.state_dict(), 'weights')
    assert_same(logs1, logs2, 'logs')
    assert not any(skipped(log) for log in logs1)
    kinds = {
        (float(log.get('sam_frac', -1)), 'loss_kl' in log) for log in logs1
    }
    assert len(kinds) > 1 or name in ONE_KIND, kinds


@pytest.mark.parametrize('name', NAMES)
def test_state_dict_round_trip_continues_bit_identically(name, hub):
    """Resuming from a safe checkpoint at step 3 keeps lock-step with the
    uninterrupted run (LookSAM's stored component, AUSAM's scores, MESA's
    teacher and SAF's table in use)."""
    full = toy_outputs()
    ow_full = build(full, name)
    for t in range(3):
        step(full, ow_full, hub, t)
    saved = round_trip(
        {'model': full.state_dict(), 'optim': ow_full.state_dict()}
    )
    resumed = toy_outputs(seed=1)  # other weights: all must come back
    resumed.load_state_dict(saved['model'])
    ow_res = build(resumed, name)
    ow_res.load_state_dict(saved['optim'])
    for t in range(3, STEPS):
        log_full = step(full, ow_full, hub, t)
        log_res = step(resumed, ow_res, hub, t)
        assert_same(full.state_dict(), resumed.state_dict(), f'step {t}')
        assert_same(log_full, log_res, f'log of step {t}')
    assert_same(ow_full.state_dict(), ow_res.state_dict(), 'wrapper state')


@pytest.mark.filterwarnings('ignore:.*float16.*CPU')
@pytest.mark.parametrize('loss_scale', ['dynamic', 512.0])
@pytest.mark.parametrize('name', NAMES)
def test_fp16_trains_with_dynamic_and_fixed_loss_scale(name, loss_scale, hub):
    before = params(toy_outputs())
    model, ow, logs = train(
        name, hub, steps=3, dtype='float16', loss_scale=loss_scale
    )
    assert isinstance(ow.loss_scaler, torch.amp.GradScaler)
    assert all(torch.isfinite(log['loss']) for log in logs)
    for k, v in model.named_parameters():
        assert torch.isfinite(v).all() and not torch.equal(v, before[k]), k
    if loss_scale != 'dynamic':
        assert not any(skipped(log) for log in logs)
        assert ow.loss_scaler.get_scale() == loss_scale


@pytest.mark.parametrize('name', NAMES)
def test_bf16_trains_without_a_scaler(name, hub):
    before = params(toy_outputs())
    model, ow, logs = train(name, hub, steps=3, dtype='bfloat16')
    assert ow.loss_scaler is None
    assert all(torch.isfinite(log['loss']) for log in logs)
    for k, v in model.named_parameters():
        assert torch.isfinite(v).all() and not torch.equal(v, before[k]), k


@pytest.mark.parametrize('name', NAMES)
def test_clip_grad_bounds_the_update(name, hub):
    """Each update gradient is clipped to max_norm, so with SGD (momentum
    0.9, no weight decay) n steps move the weights by at most
    lr * max_norm * (1 + 2 + ... + n)."""
    max_norm, steps, opt = 1e-3, 3, dict(SGD, weight_decay=0.0)
    start = flat(toy_outputs())
    moved = {}
    for clip in (None, dict(max_norm=max_norm)):
        model, _, _ = train(name, hub, steps, optimizer=opt, clip_grad=clip)
        assert torch.isfinite(flat(model)).all()
        moved[clip is not None] = float((flat(model) - start).norm())
    bound = opt['lr'] * max_norm * steps * (steps + 1) / 2
    assert 0 < moved[True] <= bound * (1 + 1e-4), moved
    assert moved[True] < moved[False] / 10, moved


@pytest.mark.filterwarnings('ignore:.*float16.*CPU')
@pytest.mark.parametrize('name', NAMES)
def test_fp16_overflow_skips_the_step_without_state_update(name, hub):
    """A forced overflow at step 2 (a SAM step where there is one, with the
    method's state in use): logged as skipped, weights and method state
    unchanged, the scale backed off."""
    model, ow, _ = train(name, hub, steps=2, dtype='float16')
    weights, state = params(model), method_state(ow)
    ow.loss_scaler.update(2.0**120)  # the next backward overflows
    log = step(model, ow, hub, 2)
    assert skipped(log) == 1.0, log
    assert_same(params(model), weights, 'weights')
    assert_same(method_state(ow), state)
    assert ow.loss_scaler.get_scale() < 2.0**120


@pytest.mark.parametrize('finite_check', ['every_step', 'deferred'])
@pytest.mark.parametrize('name', NAMES)
def test_fp32_non_finite_loss_raises_naming_the_step(name, finite_check, hub):
    """A NaN loss in fp32 is an error naming the step (at once, or at the
    deferred check within 10 steps), never a logged skipped step."""
    model = toy_outputs()
    ow = build(model, name, finite_check=finite_check)
    logs = []
    with pytest.raises(FloatingPointError, match=r'step \d+'):
        for t in range(10):
            logs.append(step(model, ow, hub, t, epoch=0, nan=t == 1))
    if finite_check == 'every_step':
        assert len(logs) == 1  # raised at the NaN step itself
    assert not any('skipped' in log for log in logs), logs


class _OverflowingGrad(torch.autograd.Function):
    """Identity forward; the gradient times 1e30 (inf in fp16)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * 1e30


@pytest.mark.filterwarnings('ignore:.*float16.*CPU')
@pytest.mark.parametrize('name', TWO_PASS)
def test_fp16_second_pass_overflow_skips_the_step(name, hub):
    """Finite losses in both passes, but the backward at w + eps overflows
    in fp16: the step is skipped with no state update (no AUSAM scores,
    no LookSAM component), as for a first-pass overflow."""
    model, ow, _ = train(name, hub, steps=2, dtype='float16')
    weights, state = params(model), method_state(ow)
    scale = ow.loss_scaler.get_scale()
    perturbed = []  # (dtype, finite) of the logits of each pass at w + eps

    def overflow_when_perturbed(module, args, out):
        now = dict(model.named_parameters())
        if any(not torch.equal(now[k], v) for k, v in weights.items()):
            perturbed.append((out.dtype, bool(torch.isfinite(out).all())))
            return _OverflowingGrad.apply(out)
        return None

    model.fc.register_forward_hook(overflow_when_perturbed)
    log = step(model, ow, hub, 2)
    assert (torch.float16, True) in perturbed  # a finite pass at w + eps
    assert torch.isfinite(log['loss']), log
    assert skipped(log) == 1.0, log
    assert_same(params(model), weights, 'weights')
    assert_same(method_state(ow), state)
    assert ow.loss_scaler.get_scale() < scale


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    """Every case on 2 gloo ranks through the Runner, in one torchrun:
    {name: (rank 0's result, rank 1's)}."""
    out = tmp_path_factory.mktemp('ddp_registry')
    worker = Path(__file__).with_name('ddp_registry_worker.py')
    cases = {k: dict(v, type=k, optimizer=SGD) for k, v in CASES.items()}
    torchrun_two_ranks(worker, out, json.dumps(cases), timeout=300)
    return {
        name: tuple(
            torch.load(out / f'{name}_rank{r}.pt', weights_only=True)
            for r in (0, 1)
        )
        for name in cases
    }


@pytest.mark.parametrize('name', NAMES)
def test_two_rank_ddp_keeps_the_weights_identical(name, ranks):
    r0, r1 = ranks[name]
    assert r0['world'] == r1['world'] == 2
    assert r0['iters'] == r1['iters'] == 4  # 2 epochs of 2 iterations
    assert_same(r0['params'], r1['params'], 'weights')
    for k, v in r0['params'].items():
        assert not torch.equal(v, r0['start'][k]), k


@pytest.mark.parametrize('name', NAMES)
def test_bad_setting_fails_when_the_wrapper_is_built(name):
    bad, match = BAD_SETTINGS[name]
    with pytest.raises(ValueError, match=match):
        build(toy_outputs(), name, **bad)


# Methods whose loss needs the whole batch in one backward (their reason is
# in the error): they refuse accumulative_counts.
NO_ACCUMULATION = {'MESAOptimWrapper', 'SAFOptimWrapper'}


@pytest.mark.parametrize('name', NAMES)
def test_accumulating_two_batches_is_one_step_on_both(name, hub):
    """accumulative_counts=2 over batches 0-15 and 16-31 (iterations 0 and
    1) updates as one step on all 32 at iteration 1, through train_step;
    BatchNorm off, since it normalises each micro-batch by itself."""
    if name in NO_ACCUMULATION:
        with pytest.raises(ValueError, match='needs the whole batch'):
            build(toy_outputs(bn=False), name, accumulative_counts=2)
        return
    whole = toy_outputs(bn=False)
    ow_whole = build(whole, name)
    hub.update_info('iter', 1)
    hub.update_info('epoch', 0)
    whole.train_step(batch(DATA, range(2 * BATCH)), ow_whole)
    acc = toy_outputs(bn=False)
    ow_acc = build(acc, name, accumulative_counts=2)
    for t in range(2):
        hub.update_info('iter', t)
        log = acc.train_step(
            batch(DATA, range(t * BATCH, (t + 1) * BATCH)), ow_acc
        )
        assert ('loss' in log) == (t == 1)  # logged at the update
    assert ow_acc.core.num_steps == ow_whole.core.num_steps == 1
    for (k, p), q in zip(whole.named_parameters(), acc.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.equal(flat(whole), flat(toy_outputs(bn=False)))


@pytest.mark.filterwarnings('ignore:.*float16.*CPU')
@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
@pytest.mark.parametrize('name', ['SAMOptimWrapper', 'AUSAMOptimWrapper'])
def test_accumulation_trains_in_half_precision(name, dtype, hub):
    model = toy_outputs()
    ow = build(model, name, accumulative_counts=2, dtype=dtype)
    before = flat(model)
    logs = [step(model, ow, hub, t) for t in range(4)]
    assert ow.core.num_steps == 2
    assert all(torch.isfinite(log['loss']) for log in logs if log)
    assert torch.isfinite(flat(model)).all()
    assert not torch.equal(flat(model), before)

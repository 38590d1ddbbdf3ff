"""Gradient accumulation and micro-batches, through the optimizer wrapper in
fp64 on a model without BatchNorm: N loader batches make the update one
step on their concatenation makes (to 1e-10), for every method that takes
them; the ones that cannot say why."""

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from torch import nn

import ausam_tasks.engine  # noqa: F401  (registers the wrappers)

K, N, CYCLES = 16, 4, 3  # batch of 16 = 4 micro-batches of 4; 3 updates
SGD = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)
AUSAM = dict(
    type='AUSAMOptimWrapper',
    alpha=0.5,
    init_epochs=0,
    warmup_epochs=0,
    num_samples=CYCLES * K,
    seed=3,
)
# The six of the issue first, then every other method that accumulates.
METHODS = {
    'SAM': dict(type='SAMOptimWrapper', rho=0.1),
    'ASAM': dict(type='SAMOptimWrapper', rho=0.5, adaptive=True),
    'AUSAM': AUSAM,
    'LookSAM': dict(type='LookSAMOptimWrapper', k=2, alpha=0.7),
    'ESAM': dict(type='ESAMOptimWrapper', beta=0.6, gamma=0.5, seed=2),
    'K-SAM': dict(type='KSAMOptimWrapper', alpha=0.5),
    'AUSAM-IW': {**AUSAM, 'importance_weights': True},
    'RST': dict(type='RSTOptimWrapper', p_start=0.5, seed=1),
    'G-RST': dict(type='GRSTOptimWrapper', p_start=0.5, seed=1),
    'late-phase SAM': dict(type='LatePhaseSAMOptimWrapper', start_epoch=0),
    'MSAM': dict(type='MSAMOptimWrapper', rho=0.3),
    'SGD (Plain)': dict(type='PlainOptimWrapper'),
}


@pytest.fixture(autouse=True)
def hub():
    hub = MessageHub.get_instance('test_accumulation')
    for k, v in dict(epoch=1, iter=0, max_epochs=4, max_iters=400).items():
        hub.update_info(k, v)
    return hub


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(CYCLES * K, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (CYCLES * K,), generator=g)
    return x, y


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def closure_for(net, x, y, rows):
    """The protocol's closure over the dataset rows ``rows``."""

    def closure(positions=None, with_outputs=False):
        r = rows if positions is None else rows[positions]
        logits = net(x[r])
        losses = {'loss': F.cross_entropy(logits, y[r], reduction='none')}
        return (losses, logits) if with_outputs else losses

    closure.net = net
    return closure


def train(spec, batches_per_update, **wrapper_kw):
    """CYCLES updates over the same 3 x 16 samples, fed as
    ``batches_per_update`` loader batches per update."""
    x, y = data()
    net = model()
    ow = build_optim_wrapper(
        net,
        dict(
            spec,
            optimizer=SGD,
            accumulative_counts=batches_per_update,
            **wrapper_kw,
        ),
    )
    size = K // batches_per_update
    for start in range(0, CYCLES * K, size):
        rows = torch.arange(start, start + size)
        ow.update_params_with_closure(closure_for(net, x, y, rows), rows, net)
    return net, ow


def assert_close(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-10, msg=name)


@pytest.mark.parametrize('name', list(METHODS))
def test_accumulating_n_batches_is_one_step_on_their_concatenation(name):
    whole, ow_whole = train(METHODS[name], 1)
    accumulated, ow_acc = train(METHODS[name], N)
    assert ow_acc.core.num_steps == ow_whole.core.num_steps == CYCLES
    assert_close(whole, accumulated)
    moved = model()
    assert not torch.equal(whole[0].weight, moved[0].weight)


@pytest.mark.parametrize('name', ['SAM', 'AUSAM', 'K-SAM', 'ESAM'])
def test_micro_batches_are_one_step_on_the_whole_batch(name):
    whole, _ = train(METHODS[name], 1)
    micro, _ = train(METHODS[name], 1, micro_batch_size=3)  # 6 pieces
    assert_close(whole, micro)
    both, _ = train(METHODS[name], 2, micro_batch_size=3)  # cycles of 2 x 8
    assert_close(whole, both)


def test_each_micro_batch_backward_holds_one_graph(monkeypatch):
    """Memory: a pass runs its micro-batches' forward/backward one after
    another (never two graphs at once)."""
    from ausam_tasks import step as step_module

    events = []
    real = step_module.backward

    def record(loss, scaler=None):
        events.append('backward')
        real(loss, scaler)

    monkeypatch.setattr(step_module, 'backward', record)
    x, y = data()
    net = model()
    ow = build_optim_wrapper(
        net, dict(type='SAMOptimWrapper', optimizer=SGD, accumulative_counts=4)
    )
    for start in range(0, K, 4):
        rows = torch.arange(start, start + 4)
        closure = closure_for(net, x, y, rows)

        def logged(positions=None, _c=closure, **kw):
            events.append('forward')
            return _c(positions, **kw)

        logged.net = net
        ow.update_params_with_closure(logged, rows, net)
    # 2 passes x 4 micro-batches, each forward followed by its backward.
    assert events == ['forward', 'backward'] * 8


@pytest.mark.parametrize(
    'kw, match',
    [
        (
            dict(accumulative_counts=0),
            'accumulative_counts must be an integer >= 1',
        ),
        (
            dict(accumulative_counts=2.5),
            'accumulative_counts must be an integer >= 1',
        ),
        (
            dict(accumulative_counts=True),
            'accumulative_counts must be an integer >= 1',
        ),
        (dict(micro_batch_size=0), 'micro_batch_size must be an integer >= 1'),
    ],
)
def test_bad_counts_name_the_setting(kw, match):
    with pytest.raises(ValueError, match=match):
        build_optim_wrapper(
            model(), dict(type='SAMOptimWrapper', optimizer=SGD, **kw)
        )


@pytest.mark.parametrize('name', ['MESAOptimWrapper', 'SAFOptimWrapper'])
@pytest.mark.parametrize(
    'kw', [dict(accumulative_counts=2), dict(micro_batch_size=8)]
)
def test_methods_whose_loss_needs_the_whole_batch_refuse(name, kw):
    with pytest.raises(ValueError, match='KL term needs the whole batch'):
        build_optim_wrapper(model(), dict(type=name, optimizer=SGD, **kw))


def test_local_perturbation_without_ddp_is_the_global_step():
    a, _ = train(METHODS['SAM'], 2)
    b, _ = train(METHODS['SAM'], 2, perturbation='local')
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    'name, match',
    [
        ('GRSTOptimWrapper', 'mixes in the first-pass gradient'),
        ('LookSAMOptimWrapper', 'stores a component of the first-pass'),
        ('MSAMOptimWrapper', 'no first pass whose gradient'),
        ('PlainOptimWrapper', 'no first pass whose gradient'),
    ],
)
def test_local_perturbation_is_refused_where_ranks_would_diverge(name, match):
    with pytest.raises(ValueError, match=match):
        build_optim_wrapper(
            model(), dict(type=name, optimizer=SGD, perturbation='local')
        )
    with pytest.raises(ValueError, match="must be 'global' or 'local'"):
        build_optim_wrapper(
            model(),
            dict(type='SAMOptimWrapper', optimizer=SGD, perturbation='rank'),
        )


def test_two_ranks_local_and_global_perturbation(tmp_path):
    """'global' equals the single-process step on both ranks' samples
    (also accumulated); 'local' perturbs each rank with its own gradient
    (different eps) and still leaves the ranks' weights identical. Each
    pass exchanges gradients once however many micro-batches it has, also
    when a subset reaches 2 micro-batches on one rank and 1 on the other
    (a per-micro-batch exchange would pair different passes)."""
    from pathlib import Path

    from tests.torchrun import run_two_ranks

    worker = Path(__file__).with_name('ddp_perturbation_worker.py')
    r0, r1 = run_two_ranks(worker, tmp_path)
    single, _, _ = r0['single']
    for counts in (1, 2):
        (w0, e0, x0), (w1, e1, x1) = r0['global', counts], r1['global', counts]
        torch.testing.assert_close(w0, single, rtol=0, atol=1e-10)
        assert torch.equal(w0, w1) and torch.equal(e0[0], e1[0])
        assert x0 == x1 == 2  # at w and at w + eps
        (l0, f0, y0), (l1, f1, y1) = r0['local', counts], r1['local', counts]
        assert torch.equal(l0, l1)  # identical weights after the step
        assert (f0[0] - f1[0]).norm() > 1e-3 * f0[0].norm()  # own eps
        assert (l0 - w0).norm() > 1e-8  # a different step from global
        assert y0 == y1 == 1  # at w + eps only
    # Accumulated 'local' is the one-batch 'local' step (eps from the
    # rank's own 8 samples either way).
    torch.testing.assert_close(
        r0['local', 2][0], r0['local', 1][0], rtol=0, atol=1e-10
    )
    for r in (r0, r1):
        (k1, _, n1), (k2, _, n2) = r['K-SAM', 1], r['K-SAM', 2]
        torch.testing.assert_close(k2, k1, rtol=0, atol=1e-10)
        assert n1 == n2 == 2
    assert torch.equal(r0['K-SAM', 2][0], r1['K-SAM', 2][0])


def test_both_passes_give_each_part_the_same_row_tensor():
    """A subset is cut into micro-batch rows once per update: the second
    pass hands each part the first pass's row tensor, the key of the
    protocol closure's subset cache (LossClosure), so it is not re-sliced.
    K-SAM, micro-batches of a batch and an accumulation cycle."""
    x, y = data()
    for settings, batches in (
        (dict(micro_batch_size=4), [torch.arange(K)]),
        (dict(accumulative_counts=N), list(torch.arange(K).chunk(N))),
    ):
        net, seen = model(), []

        def recording(rows):
            base = closure_for(net, x, y, rows)

            def closure(positions=None, with_outputs=False):
                seen.append(positions)
                return base(positions, with_outputs)

            closure.net = net
            return closure

        ow = build_optim_wrapper(
            net, dict(METHODS['K-SAM'], optimizer=SGD, **settings)
        )
        for rows in batches:
            ow.update_params_with_closure(recording(rows), rows, net)
        subset = seen[N:]  # after the ranking pass, 1 call per part
        assert len(subset) >= 2 * 2 and len(subset) % 2 == 0
        first, second = subset[: len(subset) // 2], subset[len(subset) // 2 :]
        assert all(a is b for a, b in zip(first, second, strict=True))


def test_weighted_subset_passes_split_across_micro_batches():
    """AUSAM's importance weights on a drawn subset (a filled score table,
    so the weights differ from 1) and InfoBatch-style pass weights, whole
    batch against micro-batches."""
    from ausam_tasks.sam import SAM

    x, y = data()
    for settings in (
        dict(METHODS['AUSAM-IW'], micro_batch_size=3),
        dict(type='SAMOptimWrapper', rho=0.1, micro_batch_size=5),
    ):
        nets = []
        for micro in (False, True):
            net = model()
            spec = dict(settings)
            if not micro:
                spec.pop('micro_batch_size')
            ow = build_optim_wrapper(net, dict(spec, optimizer=SGD))
            if hasattr(ow.core, 'table'):
                ow.core.table.update(
                    torch.arange(K), torch.linspace(0.1, 2.0, K).double()
                )
                assert not torch.allclose(
                    ow.core.importance(torch.arange(K), 1.0),
                    torch.ones(K, dtype=torch.float64),
                )
            else:
                w = torch.linspace(0.5, 2.0, K).double()
                real = ow.step_context
                ow.step_context = lambda idx, m, _r=real, _w=w: _r(
                    idx, m
                ).__class__(**{**vars(_r(idx, m)), 'weights': {'second': _w}})
                assert isinstance(ow.core, SAM)
            rows = torch.arange(K)
            ow.update_params_with_closure(
                closure_for(net, x, y, rows), rows, net
            )
            nets.append(net)
        assert_close(*nets)


def test_infobatch_refuses_accumulation_and_local_refuses_fp16():
    with pytest.raises(ValueError, match='infobatch_pass cannot be combined'):
        build_optim_wrapper(
            model(),
            dict(
                type='SAMOptimWrapper',
                optimizer=SGD,
                infobatch_pass='second',
                accumulative_counts=2,
            ),
        )
    with pytest.raises(ValueError, match="'local' with dtype='float16'"):
        build_optim_wrapper(
            model(),
            dict(
                type='SAMOptimWrapper',
                optimizer=SGD,
                perturbation='local',
                dtype='float16',
            ),
        )

"""The pieces of a step without host stalls, on the CPU: log variables
held and handed over at the log interval, the deferred finite-loss check,
the draw on the device, the score table across devices."""

import io
import re
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import Runner

from ausam_tasks.engine import LossClosure
from ausam_tasks.scores import ScoreTable
from ausam_tasks.selection import draw_without_replacement

from .toy import ToyDataset, ToyNet, batch, runner_cfg

AUSAM = dict(
    type='AUSAMOptimWrapper',
    alpha=0.5,
    warmup_epochs=1,
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
)


def train(tmp_path, log_every_iter, interval=3, wrapper=AUSAM, hooks=()):
    cfg = runner_cfg(
        tmp_path,
        wrapper,
        max_epochs=2,
        log_level='INFO',
        custom_hooks=[
            dict(
                type='SharpnessAwareLoggerHook',
                progress_seconds=0,
                log_every_iter=log_every_iter,
            ),
            dict(type='SharpnessAwareStateHook'),
            *hooks,
        ],
        experiment_name=f'nostall_{uuid.uuid4().hex}',
    )
    cfg['default_hooks']['logger']['interval'] = interval
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner


def iteration_values(runner):
    log = open(runner.logger.log_file).read()
    lines = [ln for ln in log.splitlines() if 'Epoch(train)' in ln]
    keep = r'(loss\w*|acc|sam_frac|dlp_mean): (\S+)'
    return [re.findall(keep, ln) for ln in lines], log


def test_held_log_variables_reach_the_hub_unchanged(tmp_path):
    every = train(tmp_path / 'every', log_every_iter=True)
    held = train(tmp_path / 'held', log_every_iter=False)
    timing = ('train/time', 'train/data_time', 'train/lr')
    keys = [
        k
        for k in every.message_hub.log_scalars
        if k.startswith('train/') and k not in timing
    ]
    for key in ('train/loss', 'train/sam_frac', 'train/dlp_mean'):
        assert key in keys
    for key in keys:
        a = every.message_hub.log_scalars[key].data[0]
        b = held.message_hub.log_scalars[key].data[0]
        assert a.tolist() == b.tolist(), key  # every iteration, same value
        assert len(a) == 8
    lines_every, _ = iteration_values(every)
    lines_held, log = iteration_values(held)
    # Iterations 3 and 7 (LoggerHook skips the short remainder of an epoch).
    assert lines_every == lines_held and len(lines_held) == 2
    assert 'SAM passes used 50.0% of the samples' in log
    assert held.optim_wrapper.deferring_log_vars
    assert held.optim_wrapper.flush_log_vars() == []


def test_deferred_check_raises_at_the_check_naming_the_steps():
    model = ToyNet()
    ow = build_optim_wrapper(model, dict(AUSAM, finite_check='deferred'))
    ow.core.finite.every = 4
    ds = ToyDataset(8)
    model.train_step(batch(ds, range(8)), ow)
    model.train_step(batch(ds, range(8)), ow)
    clean = ds.x.clone()
    ds.x[:] = float('nan')
    model.train_step(batch(ds, range(8)), ow)  # step 2: recorded, no raise
    ds.x = clean
    with pytest.raises(FloatingPointError) as err:
        model.train_step(batch(ds, range(8)), ow)  # step 3 ends the range
    msg = str(err.value)
    assert msg.startswith(
        "step 2: loss 'loss_cls' at w is not finite (nan); lower the "
        'learning rate or rho'
    )
    assert 'deferred check of steps 0-3' in msg
    # As the message says: steps 2 and 3 ran on with NaN gradients.
    assert torch.isnan(model.conv.weight).all()
    # The next range starts after the check.
    ow.core.finite._record = None
    ow.core.check_finite()
    assert ow.core.finite._since == 4


def test_every_step_check_raises_at_once_on_any_device():
    model = ToyNet()
    ow = build_optim_wrapper(model, dict(AUSAM, finite_check='every_step'))
    ds = ToyDataset(8)
    ds.x[:] = float('nan')  # whatever the subset (the hub's epoch)
    before = model.conv.weight.detach().clone()
    with pytest.raises(FloatingPointError, match=r"^step 0: loss 'loss_cls'"):
        model.train_step(batch(ds, range(8)), ow)
    assert torch.equal(model.conv.weight, before)


@HOOKS.register_module()
class PoisonDataAt(Hook):
    """Makes every sample NaN before iteration ``at`` (a diverging run)."""

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.at:
            runner.train_dataloader.dataset.x[:] = float('nan')


def test_no_checkpoint_is_written_after_a_non_finite_loss(tmp_path):
    wrapper = dict(AUSAM, finite_check='deferred')
    with pytest.raises(FloatingPointError) as err:
        # 4 iterations an epoch; the log interval is longer, so the
        # epoch end is the check. NaN from iteration 5 (epoch 2).
        train(
            tmp_path,
            log_every_iter=None,
            interval=100,
            wrapper=wrapper,
            hooks=[dict(type='PoisonDataAt', at=5)],
        )
    assert str(err.value).startswith("step 5: loss 'loss_cls' at w")
    assert 'deferred check of steps 4-7' in str(err.value)
    assert (tmp_path / 'epoch_1.pth').exists()
    assert not (tmp_path / 'epoch_2.pth').exists()


def test_bad_settings_name_the_setting():
    with pytest.raises(ValueError, match='finite_check must be one of'):
        build_optim_wrapper(ToyNet(), dict(AUSAM, finite_check='never'))
    from ausam_tasks.engine import SharpnessAwareLoggerHook

    with pytest.raises(ValueError, match='log_every_iter must be None'):
        SharpnessAwareLoggerHook(log_every_iter='yes')


def test_draw_without_replacement_is_torch_multinomial_on_the_cpu():
    for seed in range(50):
        g = torch.Generator().manual_seed(1000 + seed)
        probs = torch.rand(40, dtype=torch.float64, generator=g) + 0.05
        probs /= probs.sum()
        for n in (1, 7, 20, 40):
            a = draw_without_replacement(
                probs, n, torch.Generator().manual_seed(seed)
            )
            b = torch.multinomial(
                probs, n, False, generator=torch.Generator().manual_seed(seed)
            )
            assert torch.equal(a.sort().values, b.sort().values)


def test_padding_entries_leave_the_table_unchanged():
    for average in ('mean', 'ema'):
        table = ScoreTable(6, average)
        table.update(torch.tensor([1, 2]), torch.tensor([0.5, 1.5]))
        before = table.state_dict()
        # Padding (weight 0, index 0, DLP 0) as the DDP exchange sends it.
        table.update(
            torch.tensor([2, 0, 0]),
            torch.tensor([2.5, 0.0, 0.0]),
            weight=torch.tensor([1, 0, 0]),
        )
        assert torch.equal(
            table.count, before['count'] + torch.tensor([0, 0, 1, 0, 0, 0])
        )
        assert table.value[0] == 0 and table.value[1] == before['value'][1]
        assert torch.isnan(table.scores(torch.tensor([0])))[0]


def test_score_table_state_loads_onto_the_tables_device():
    table = ScoreTable(None, 'ema', 0.5)
    table.update(torch.tensor([0, 5, 5]), torch.tensor([1.0, 2.0, 4.0]))
    state = table.state_dict()
    assert state['value'].device.type == 'cpu'
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, map_location='cpu')
    again = ScoreTable(None, 'ema', 0.5)
    again.load_state_dict(loaded)
    idx = torch.arange(len(table))
    assert torch.equal(again.value, table.value)
    assert torch.equal(again.count, table.count)
    # Duplicates in one update count as their mean, the first observation.
    assert again.scores(idx)[5] == table.scores(idx)[5] == 3.0
    # A table on another device loads a CPU checkpoint onto that device.
    meta = ScoreTable(None, 'ema', 0.5).to('meta')
    meta.load_state_dict(loaded)
    assert meta.value.device.type == 'meta' and len(meta) == len(table)


def test_closure_cuts_each_positions_tensor_once():
    ds = ToyDataset(8)
    model = ToyNet()
    data = model.data_preprocessor(batch(ds, range(8)), True)
    closure = LossClosure(data, 8, model, lambda: torch.enable_grad())
    pos = torch.tensor([1, 4, 6])
    a = closure(pos)['loss_cls']
    b = closure(pos)['loss_cls']
    assert len(closure._subsets) == 1 and torch.equal(a, b)
    same_rows = pos.clone()  # another tensor: cut again, same rows
    assert torch.equal(closure(same_rows)['loss_cls'], a)
    assert len(closure._subsets) == 2


def test_a_resumed_run_names_its_own_steps():
    from ausam_tasks.finite import FiniteCheck

    check = FiniteCheck('deferred', every=10)
    check.observe('loss_cls', torch.tensor([1.0, 2.0]), 400, 'at w')
    assert not check.due(400) and check.due(409)
    check.observe('loss_cls', torch.tensor([1.0, float('inf')]), 403, 'at w')
    check.observe('loss_cls', torch.tensor([float('nan')]), 405, 'at w + eps')
    with pytest.raises(FloatingPointError) as err:
        check.check(409)
    assert str(err.value).startswith(
        "step 403: loss 'loss_cls' at w is not finite (inf)"
    )
    assert 'deferred check of steps 400-409' in str(err.value)

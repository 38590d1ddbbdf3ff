"""The ADLP table (Eq. 6)."""

import pytest
import torch

from ausam_tasks.scores import ScoreTable


def test_mean_is_the_running_mean_of_each_samples_dlp():
    t = ScoreTable(5)
    t.update(torch.tensor([0, 2]), torch.tensor([1.0, 4.0]))
    t.update(torch.tensor([2, 3]), torch.tensor([2.0, 7.0]))
    s = t.scores(torch.arange(5))
    assert s[0] == 1.0 and s[2] == 3.0 and s[3] == 7.0
    assert torch.isnan(s[1]) and torch.isnan(s[4])  # never selected
    assert t.count.tolist() == [1, 0, 2, 1, 0]


def test_duplicate_indices_in_one_update_count_twice():
    t = ScoreTable(3)
    t.update(torch.tensor([1, 1, 2]), torch.tensor([1.0, 3.0, 5.0]))
    assert t.scores(torch.tensor([1]))[0] == 2.0
    assert t.count[1] == 2


def test_ema_average():
    t = ScoreTable(2, average='ema', ema_momentum=0.5)
    t.update(torch.tensor([0]), torch.tensor([4.0]))  # seeded by the first
    t.update(torch.tensor([0]), torch.tensor([2.0]))
    assert t.scores(torch.tensor([0]))[0] == pytest.approx(3.0)


def test_growing_and_fixed_tables():
    t = ScoreTable()
    t.update(torch.tensor([10]), torch.tensor([1.0]))
    assert len(t) >= 11 and t.scores(torch.tensor([10]))[0] == 1.0
    fixed = ScoreTable(4)
    with pytest.raises(IndexError, match='num_samples'):
        fixed.update(torch.tensor([4]), torch.tensor([1.0]))
    with pytest.raises(IndexError, match='negative'):
        fixed.scores(torch.tensor([-1]))


def test_state_round_trip_and_mismatch_errors():
    t = ScoreTable(4)
    t.update(torch.tensor([0, 3]), torch.tensor([0.5, 1.5]))
    u = ScoreTable(4)
    u.load_state_dict(t.state_dict())
    assert torch.equal(u.value, t.value) and torch.equal(u.count, t.count)
    with pytest.raises(ValueError, match='dataset changed'):
        ScoreTable(5).load_state_dict(t.state_dict())
    with pytest.raises(ValueError, match='score_average'):
        ScoreTable(4, average='ema').load_state_dict(t.state_dict())


def test_stats_summarise_scored_entries():
    t = ScoreTable(4)
    t.update(torch.tensor([0, 1]), torch.tensor([1.0, 3.0]))
    st = t.stats()
    assert st['scored_frac'] == 0.5
    assert st['score_mean'] == 2.0 and st['score_max'] == 3.0


def test_fix_size_keeps_scores_and_then_bounds_checks():
    t = ScoreTable()
    t.update(torch.tensor([2, 5]), torch.tensor([1.0, 2.0]))
    t.fix_size(6)
    assert len(t) == 6 and t.stats()['scored_frac'] == pytest.approx(2 / 6)
    assert t.scores(torch.tensor([5]))[0] == 2.0
    with pytest.raises(IndexError, match='outside the score table of 6'):
        t.scores(torch.tensor([6]))
    with pytest.raises(ValueError, match='larger dataset'):
        t.fix_size(4)

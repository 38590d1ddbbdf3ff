"""Eq. 7-8, the warm-up of s_max, and the draw itself."""

import pytest
import torch

from ausam_tasks.selection import (
    fill_unscored,
    normalize_scores,
    s_max_at,
    select_subset,
    select_topk_loss,
    select_uniform,
    selection_probs,
    subset_size,
)


def test_normalisation_matches_eq8_on_known_numbers():
    g = torch.tensor([1.0, 2.0, 3.0, 5.0])
    # s_min + (g - 1) / 4 * (0.5 - 0.1)
    expected = torch.tensor([0.1, 0.2, 0.3, 0.5])
    assert torch.allclose(normalize_scores(g, 0.1, 0.5), expected)
    p = selection_probs(g, 0.1, 0.5)
    assert torch.allclose(p, expected / 1.1)  # Eq. 7: divide by the sum
    assert torch.isclose(p.sum(), torch.tensor(1.0))
    # The ratio of largest to smallest probability is s_max / s_min.
    assert torch.isclose(p.max() / p.min(), torch.tensor(5.0))


def test_s_max_warmup_is_linear_then_flat():
    assert s_max_at(0, 0.1, 0.5, 30) == pytest.approx(0.1)
    assert s_max_at(15, 0.1, 0.5, 30) == pytest.approx(0.3)
    assert s_max_at(7.5, 0.1, 0.5, 30) == pytest.approx(0.2)
    assert s_max_at(30, 0.1, 0.5, 30) == pytest.approx(0.5)
    assert s_max_at(200, 0.1, 0.5, 30) == pytest.approx(0.5)
    assert s_max_at(0, 0.1, 0.5, 0) == pytest.approx(0.5)
    # At the start of warm-up every sample has the same probability.
    p = selection_probs(
        torch.tensor([1.0, 9.0]), 0.1, s_max_at(0, 0.1, 0.5, 30)
    )
    assert torch.allclose(p, torch.tensor([0.5, 0.5], dtype=p.dtype))


def test_equal_scores_give_uniform_probabilities_without_nan():
    for g in (torch.zeros(5), torch.full((5,), 3.0), torch.ones(1)):
        p = selection_probs(g, 0.1, 0.5)
        assert torch.isfinite(p).all()
        assert torch.allclose(p, torch.full_like(p, 1 / len(g)))


def test_never_scored_samples_count_as_the_batch_maximum():
    g = torch.tensor([1.0, float('nan'), 3.0, float('nan')])
    assert torch.equal(fill_unscored(g), torch.tensor([1.0, 3.0, 3.0, 3.0]))
    p = selection_probs(g, 0.1, 0.5)
    assert p[1] == p[2] == p[3] == p.max()
    # A batch of only unscored samples draws uniformly.
    p = selection_probs(torch.full((4,), float('nan')), 0.1, 0.5)
    assert torch.allclose(p, torch.full((4,), 0.25, dtype=p.dtype))


def test_draw_is_without_replacement_and_sorted():
    g = torch.rand(64)
    gen = torch.Generator().manual_seed(0)
    for n in (1, 10, 32, 64):
        pos = select_subset(g, n, 0.1, 0.5, gen)
        assert len(pos) == n and len(set(pos.tolist())) == n
        assert torch.equal(pos, pos.sort().values)
        assert pos.min() >= 0 and pos.max() < 64


def test_single_draw_frequencies_follow_the_probabilities():
    g = torch.tensor([1.0, 2.0, 3.0, 5.0])
    p = selection_probs(g, 0.1, 0.5)
    gen = torch.Generator().manual_seed(1)
    trials = 20000
    counts = torch.zeros(4)
    for _ in range(trials):
        counts[select_subset(g, 1, 0.1, 0.5, gen)] += 1
    # 5 standard errors: a broken normalisation is far outside this.
    se = (p * (1 - p) / trials).sqrt()
    assert ((counts / trials - p).abs() < 5 * se).all()


def test_subset_size_rounds_and_keeps_at_least_one():
    assert subset_size(128, 0.5) == 64
    assert subset_size(128, 0.4) == 51
    assert subset_size(3, 0.1) == 1
    assert subset_size(7, 1.0) == 7


def test_uniform_and_topk_selectors():
    gen = torch.Generator().manual_seed(0)
    pos = select_uniform(10, 4, gen)
    assert len(set(pos.tolist())) == 4
    losses = torch.tensor([0.1, 5.0, 0.3, 4.0, 0.2])
    assert select_topk_loss(losses, 2).tolist() == [1, 3]

"""examples/custom_model.py run as a user would, and what its AUSAM did."""

import math
import runpy
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = runpy.run_path(str(ROOT / 'examples' / 'custom_model.py'))


def test_example_script_trains_sam_and_ausam(tmp_path, capsys):
    EXAMPLE['main'](['--work-dir', str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    acc = {
        line.split(':')[0]: float(line.rsplit(' ', 1)[1].rstrip('%'))
        for line in out
        if 'accuracy on fresh blobs' in line
    }
    assert set(acc) == {'sam', 'ausam'}
    # Two well-separated blobs: a trained MLP gets nearly all of them.
    assert min(acc.values()) > 90, acc


def test_example_ausam_scores_every_sample_then_trains_on_half(tmp_path):
    runner = EXAMPLE['train'](
        dict(type='AUSAMOptimWrapper', alpha=0.5, num_samples=256),
        str(tmp_path),
        epochs=2,
    )
    wrapper = runner.optim_wrapper
    counts = wrapper.selection_counts(torch.arange(256))
    # Epoch 1 scores all 256 samples once; epoch 2 draws 16 of each 32.
    assert int(counts.sum()) == 256 + 8 * 16
    assert bool((counts >= 1).all())
    scores = wrapper.sample_scores(torch.arange(256))
    assert all(math.isfinite(s) and s >= 0 for s in scores.tolist())

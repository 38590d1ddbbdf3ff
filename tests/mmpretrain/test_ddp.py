"""Two gloo ranks through mmpretrain's launcher path: identical weights and
score tables on both ranks."""

from pathlib import Path

import torch

from tests.torchrun import run_two_ranks

from .conftest import CONFIGS, image_folder_config


def test_two_rank_ausam_keeps_ranks_identical(image_folder, tmp_path):
    cfg = image_folder_config(
        CONFIGS / 'resnet18_ausam-a0.5_8xb16_cifar10.py',
        image_folder,
        tmp_path / 'cfg.py',
        **{'randomness.seed': 0},
    )
    worker = Path(__file__).with_name('ddp_worker.py')
    r0, r1 = run_two_ranks(worker, tmp_path, str(cfg))
    assert r0['world'] == r1['world'] == 2
    for key, value in r0['weights'].items():
        assert torch.equal(value, r1['weights'][key]), key
    assert torch.equal(r0['scores'].isnan(), r1['scores'].isnan())
    seen = ~r0['scores'].isnan()
    assert seen.sum() == 16  # epoch 1 (full SAM) scored both ranks' samples
    assert torch.equal(r0['scores'][seen], r1['scores'][seen])

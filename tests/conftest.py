import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault('OMP_NUM_THREADS', '2')

from tools.data_root import ENV_VAR, cifar10_jpg_archive  # noqa: E402


@pytest.fixture
def cifar10_archive():
    """The real CIFAR-10 JPEG archive; the test skips without it."""
    path = cifar10_jpg_archive()
    if not path.is_file():
        pytest.skip(f'real data absent: {path} (set {ENV_VAR} to its folder)')
    return path


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests use tiny models, which gain nothing from more threads; on a
    shared 2-core machine extra threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

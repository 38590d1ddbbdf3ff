"""One torch thread for the QAT tests: these small models gain nothing from
more, and on a shared 2-core machine extra threads only contend."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

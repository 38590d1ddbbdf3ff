"""A steady-state SAM-family step without host synchronisation.

On a GPU, SAM and AUSAM (each selector) steps after the scoring epoch run
through the real wrapper, protocol (closure, subsets) and a small CIFAR
ResNet inside ``torch.cuda.set_sync_debug_mode('error')``. The same code
path runs on the CPU (without the sync check), so CI exercises the file.
The checks live in ``no_sync.py``, which also runs without pytest on a
device machine (docs/gpu.md).
"""

import pytest
import torch

from .no_sync import (
    WRAPPERS,
    deferred_finite_check,
    device_data_fetch_and_step,
    host_reads_of_a_cpu_step,
    score_table_between_devices,
    steady_state_steps,
)

DEVICES = [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason='needs a CUDA device'
        ),
    ),
]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('method', sorted(WRAPPERS))
def test_steady_state_steps_do_not_sync(device, method):
    steady_state_steps(device, method)


@pytest.mark.parametrize('device', DEVICES)
def test_deferred_finite_check_records_without_a_sync(device):
    deferred_finite_check(device)


@pytest.mark.parametrize('device', DEVICES)
def test_score_table_moves_between_devices(device):
    score_table_between_devices(device)


@pytest.mark.parametrize('method', sorted(WRAPPERS))
def test_a_cpu_step_reads_no_device_value_on_the_host(method):
    assert host_reads_of_a_cpu_step(method) == []


@pytest.mark.parametrize('device', DEVICES)
def test_a_device_data_fetch_and_step_do_not_sync(device):
    """On CUDA under the sync check; on the CPU, no host read besides the
    host indices' range check."""
    assert device_data_fetch_and_step(device) == []

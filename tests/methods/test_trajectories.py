"""Every method's 20-step fp32 trajectory equals the one recorded before
the step protocol was restructured (tests/methods/trajectory.py)."""

import json

import pytest

from .trajectory import FILE, METHODS, run

RECORDED = json.loads(FILE.read_text())


def test_every_recorded_method_is_still_configured():
    assert sorted(RECORDED) == sorted(METHODS)


@pytest.mark.parametrize('name', sorted(METHODS))
def test_trajectory_is_bit_identical(name):
    assert run(name) == RECORDED[name]

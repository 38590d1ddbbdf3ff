import pytest
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def qat_scope():
    """Build from this task's scope, whatever scope an earlier test's Runner
    left current; restored afterwards."""
    with DefaultScope.overwrite_default_scope('tasks.qat'):
        yield

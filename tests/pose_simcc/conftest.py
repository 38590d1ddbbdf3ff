"""A generated MPII-format dataset shared by the pose tests."""

import pytest


@pytest.fixture(scope='session')
def mpii_fixture(tmp_path_factory):
    from tasks.pose_simcc.fixtures import make_mpii_fixture

    root = tmp_path_factory.mktemp('mpii_fixture')
    make_mpii_fixture(root, num_train=256, num_val=48, image_size=96, seed=0)
    return root


@pytest.fixture(autouse=True)
def restore_default_scope():
    """These tests switch mmengine's global default scope to tasks.pose_simcc;
    put it back so tests of other scopes run after them are unaffected."""
    from mmengine.registry import DefaultScope

    saved = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)

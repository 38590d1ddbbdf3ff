"""tools/data_root.py: one place for where real data lives."""

from pathlib import Path

from tools import data_root


def test_environment_variable_points_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setenv(data_root.ENV_VAR, str(tmp_path))
    assert data_root.data_root() == tmp_path
    assert data_root.cifar10_jpg_archive() == (
        tmp_path / 'cifar10' / 'cifar10-jpg-train.tar.gz'
    )
    assert data_root.mpii_sample() == tmp_path / 'mpii_sample'


def test_default_is_the_shared_folder_beside_the_repository(monkeypatch):
    monkeypatch.delenv(data_root.ENV_VAR, raising=False)
    repo = Path(__file__).resolve().parents[1]
    assert data_root.data_root() == repo.parent / 'shared' / 'data'

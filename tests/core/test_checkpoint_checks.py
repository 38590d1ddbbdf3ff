"""Checkpoints are checked: strict loading through the tools, clear errors
for files that are not checkpoints, atomic saves."""

import os
import textwrap

import pytest
import torch

from ausam_tasks.engine.checkpoint import AtomicLocalBackend
from ausam_tasks.tools import test as test_tool
from ausam_tasks.tools import train as train_tool

from .test_tools import CONFIG


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A toy AUSAM config, a 3-class checkpoint of it, and a config of the
    same network with 5 classes (a different model)."""
    root = tmp_path_factory.mktemp('ckpt')
    config = root / 'toy.py'
    config.write_text(CONFIG)
    other = root / 'toy5.py'
    other.write_text(CONFIG + "model = dict(type='ToyNet', num_classes=5)\n")
    train_tool.main([str(config), '--work-dir', str(root / 'work')])
    return dict(
        config=str(config),
        other=str(other),
        ckpt=str(root / 'work' / 'epoch_1.pth'),
        root=root,
    )


WRONG_MODEL = (
    r'does not fit the ToyNet model: 0 missing, 0 unexpected and 2 '
    r"mis-shaped keys \(mis-shaped: \['fc.weight: \(3, 4\) in the "
    r'checkpoint, \(5, 4\) in the model'
)


def test_testing_a_checkpoint_of_another_model_fails(trained, capsys):
    with pytest.raises(KeyError, match=WRONG_MODEL):
        test_tool.main([trained['other'], trained['ckpt']])
    # --non-strict keeps mmengine's behaviour: skip what does not fit.
    metrics = test_tool.main(
        [trained['other'], trained['ckpt'], '--non-strict']
    )
    assert 'accuracy' in metrics
    # The matching config loads strictly.
    assert 'accuracy' in test_tool.main([trained['config'], trained['ckpt']])


def test_resume_and_load_from_check_the_model(trained, tmp_path):
    # Before: an optimizer param-group error that never named the model.
    with pytest.raises(KeyError, match=WRONG_MODEL):
        train_tool.main(
            [
                trained['other'],
                '--work-dir',
                str(tmp_path),
                '--resume',
                trained['ckpt'],
            ]
        )
    with pytest.raises(KeyError, match=WRONG_MODEL):
        train_tool.main(
            [
                trained['other'],
                '--work-dir',
                str(tmp_path),
                '--cfg-options',
                f'load_from={trained["ckpt"]}',
            ]
        )


def test_files_that_are_not_checkpoints_say_so(trained, tmp_path):
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    cut = tmp_path / 'cut.pth'
    data = open(trained['ckpt'], 'rb').read()
    cut.write_bytes(data[: len(data) // 2])  # a save killed midway
    pickled = tmp_path / 'obj.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': os.stat}, pickled)
    listed = tmp_path / 'list.pth'
    torch.save([1, 2], listed)
    for path in (text, cut, pickled, listed):
        with pytest.raises(ValueError, match='is not a checkpoint') as e:
            test_tool.main([trained['config'], str(path)])
        assert 'weights_only' not in str(e.value)
    with pytest.raises(ValueError, match='holds only weights'):
        bare = tmp_path / 'bare.pth'
        state = torch.load(trained['ckpt'], weights_only=True)
        torch.save(state['state_dict'], bare)
        train_tool.main(
            [
                trained['config'],
                '--work-dir',
                str(tmp_path),
                '--resume',
                str(bare),
            ]
        )


def test_saves_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / 'epoch_1.pth'
    backend = AtomicLocalBackend()
    backend.put(b'old', target)

    def killed(src, dst):  # the process dies before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        backend.put(b'new and longer', target)
    monkeypatch.undo()
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['epoch_1.pth']  # no leftovers
    backend.put(b'new', target)
    assert target.read_bytes() == b'new'


def test_runtime_config_saves_through_the_atomic_backend(
    tmp_path, monkeypatch
):
    from mmengine.config import Config

    base = Config.fromfile(
        os.path.join(
            os.path.dirname(__file__),
            '../../configs/_base_/default_runtime.py',
        )
    )
    ckpt_hook = base.default_hooks.checkpoint
    assert ckpt_hook.backend_args == dict(backend='atomic_local')
    assert base.default_hooks.checkpoint_check.strict is True
    writes = []
    real = AtomicLocalBackend._atomic_write
    monkeypatch.setattr(
        AtomicLocalBackend,
        '_atomic_write',
        staticmethod(lambda p, d, m: (writes.append(p), real(p, d, m))),
    )
    config = tmp_path / 'toy.py'
    config.write_text(
        CONFIG
        + textwrap.dedent(f"""
        default_hooks = dict(checkpoint={dict(ckpt_hook, interval=1)!r})
        """)
    )
    train_tool.main([str(config), '--work-dir', str(tmp_path / 'w')])
    assert any(p.endswith('epoch_1.pth') for p in writes)
    assert (tmp_path / 'w' / 'epoch_1.pth').is_file()

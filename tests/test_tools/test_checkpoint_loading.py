"""The tools load checkpoints with ``weights_only=True``: a checkpoint whose
pickle would run code is refused before it runs, and a real mmengine
checkpoint (message hub, optimizer, schedulers) resumes."""
import os
import os.path as osp
import pickle
import runpy
import subprocess
import sys

import pytest
import torch

from ..conftest import ROOT, SHAPES_CONFIG, run_tool

# tools/ is not a package: its shared module is taken from its file.
LAUNCH_UTILS = runpy.run_path(osp.join(ROOT, 'tools', 'launch_utils.py'))
MMENGINE_GLOBALS = LAUNCH_UTILS['mmengine_checkpoint_globals']()


def pickled_name(safe_global):
    """A pickle's name for an allow-list entry, object or (object, name)."""
    if isinstance(safe_global, tuple):
        return safe_global[1]
    return f'{safe_global.__module__}.{safe_global.__qualname__}'


class RunsCode:
    """What a malicious checkpoint carries: unpickling it runs a command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


@pytest.fixture
def malicious_checkpoint(tmp_path):
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'malicious.pth'
    torch.save({'state_dict': {}, 'meta': RunsCode(marker)}, path)
    return path, marker


def test_malicious_checkpoint_is_live(malicious_checkpoint):
    """The payload works: an unrestricted load runs it."""
    path, marker = malicious_checkpoint
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_loader_refuses_code(malicious_checkpoint):
    path, marker = malicious_checkpoint
    with torch.serialization.safe_globals(MMENGINE_GLOBALS):
        with pytest.raises(pickle.UnpicklingError, match='system'):
            LAUNCH_UTILS['load_local_checkpoint'](str(path))
    assert not marker.exists()


@pytest.mark.parametrize('owner, name', [(os, 'system'),
                                         (object, '__subclasses__')])
def test_getattr_is_limited_to_history_buffer_methods(owner, name):
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer'):
        LAUNCH_UTILS['history_buffer_method'](owner, name)


def test_test_tool_refuses_malicious_checkpoint(malicious_checkpoint,
                                                shapes_root):
    path, marker = malicious_checkpoint
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', SHAPES_CONFIG,
         str(path)],
        cwd=ROOT,
        env=dict(os.environ, SHAPES_ROOT=shapes_root),
        capture_output=True,
        text=True,
        timeout=600)
    assert proc.returncode != 0
    assert 'Weights only load failed' in proc.stderr, proc.stderr[-2000:]
    assert not marker.exists()


def test_real_checkpoint_resumes(tmp_path, shapes_root):
    work_dir = str(tmp_path)
    run = [
        'tools/train.py', SHAPES_CONFIG, '--work-dir', work_dir,
        '--cfg-options', 'train_cfg.val_interval=10',
        'default_hooks.checkpoint.interval=1', 'train_dataloader.batch_size=2'
    ]
    env = dict(os.environ, SHAPES_ROOT=shapes_root)
    run_tool(*run, 'train_cfg.max_iters=1', env=env)
    checkpoint = osp.join(work_dir, 'iter_1.pth')
    # the types it holds beyond tensors are the allowed ones
    allowed = {pickled_name(g) for g in MMENGINE_GLOBALS}
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint)
    assert set(unsafe) <= allowed, set(unsafe) - allowed
    log = run_tool(
        *run, 'train_cfg.max_iters=2', '--resume', checkpoint, env=env)
    assert 'resumed epoch: 0, iter: 1' in log
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))

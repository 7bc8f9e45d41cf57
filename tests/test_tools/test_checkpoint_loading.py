"""The tools load checkpoints resolving only allowed globals (torch >= 2.6:
``weights_only=True`` with mmengine's types added; older torch: the
restricted unpickler): a checkpoint whose pickle would run code is refused
before it runs, and a real mmengine checkpoint (message hub, optimizer,
schedulers) resumes."""
import os
import os.path as osp
import pickle
import subprocess
import sys

import mmdet
import pytest
import torch

from mmdet_lossplug.engine import safe_checkpoint
from ..helpers import ROOT, SHAPES_CONFIG, run_tool

pytestmark = pytest.mark.integration  # runs the tools / trains

MMENGINE_GLOBALS = safe_checkpoint.mmengine_checkpoint_globals()


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
    safe_checkpoint.use_safe_checkpoint_loading()
    with pytest.raises(
            pickle.UnpicklingError,
            match=r'(?s)Weights only load failed.*system'):
        safe_checkpoint.load_local_checkpoint(str(path))
    assert not marker.exists()


def test_restricted_unpickler_refuses_code(malicious_checkpoint):
    """The loader of torch < 2.6, on any torch: a checkpoint asking for
    ``os.system`` is refused, naming it, before anything runs."""
    path, marker = malicious_checkpoint
    with pytest.raises(pickle.UnpicklingError, match=r'asks for \w+\.system'):
        torch.load(
            path,
            pickle_module=safe_checkpoint.restricted_pickle,
            weights_only=False)
    assert not marker.exists()


@pytest.mark.parametrize('owner, name', [(os, 'system'),
                                         (object, '__subclasses__')])
def test_getattr_is_limited_to_history_buffer_methods(owner, name):
    with pytest.raises(pickle.UnpicklingError, match='only HistoryBuffer'):
        safe_checkpoint.history_buffer_method(owner, name)


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


def mmdet_tool(name: str) -> str:
    """MMDetection's own tools/train.py or test.py, as pip installed it."""
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', name)


def user_config(tmp_path, with_hook: bool) -> str:
    """A user's config for MMDetection's own tools: the plugin, and the
    hook that loads checkpoints safely."""
    config = tmp_path / f'user_config_hook{int(with_hook)}.py'
    config.write_text(
        f"_base_ = '{SHAPES_CONFIG}'\n"
        "custom_imports = dict(imports=['mmdet_lossplug'],\n"
        "                      allow_failed_imports=False)\n" +
        ("custom_hooks = [dict(type='SafeCheckpointLoadingHook')]\n"
         if with_hook else ''))
    return str(config)


def run_mmdet_tool(*args, shapes_root):
    return subprocess.run([sys.executable, *args],
                          cwd=ROOT,
                          env=dict(os.environ, SHAPES_ROOT=shapes_root),
                          capture_output=True,
                          text=True,
                          timeout=600)


def test_mmdet_own_tools_with_the_hook(malicious_checkpoint, shapes_root,
                                       tmp_path):
    """With SafeCheckpointLoadingHook in the config, MMDetection's own tools
    refuse a checkpoint that runs code and resume a real mmengine one,
    which they cannot without it (torch >= 2.6 loads weights only, and an
    mmengine checkpoint holds a HistoryBuffer)."""
    path, marker = malicious_checkpoint
    refused = run_mmdet_tool(
        mmdet_tool('test.py'),
        user_config(tmp_path, with_hook=True),
        str(path),
        '--work-dir',
        str(tmp_path / 'test'),
        shapes_root=shapes_root)
    assert refused.returncode != 0
    assert 'Weights only load failed' in refused.stderr
    assert not marker.exists()

    work_dir = str(tmp_path / 'train')
    iters = ('train_cfg.val_interval=10',
             'default_hooks.checkpoint.interval=1',
             'train_dataloader.batch_size=2')
    run_tool(
        'tools/train.py',
        SHAPES_CONFIG,
        '--work-dir',
        work_dir,
        '--cfg-options',
        *iters,
        'train_cfg.max_iters=1',
        env=dict(os.environ, SHAPES_ROOT=shapes_root))
    checkpoint = osp.join(work_dir, 'iter_1.pth')
    for with_hook in (True, False):
        resumed = run_mmdet_tool(
            mmdet_tool('train.py'),
            user_config(tmp_path, with_hook),
            '--work-dir',
            work_dir,
            '--resume',
            checkpoint,
            '--cfg-options',
            *iters,
            'train_cfg.max_iters=2',
            shapes_root=shapes_root)
        log = resumed.stdout + resumed.stderr
        if with_hook:
            assert resumed.returncode == 0, log[-3000:]
            assert 'resumed epoch: 0, iter: 1' in log
        elif torch.__version__ >= (2, 6):
            assert resumed.returncode != 0
            assert 'Weights only load failed' in log


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
    if torch.__version__ >= (2, 6):
        # the types it holds beyond tensors are the allowed ones
        allowed = {pickled_name(g) for g in MMENGINE_GLOBALS}
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(
            checkpoint)
        assert set(unsafe) <= allowed, set(unsafe) - allowed
    # both loaders read all of it, as an unrestricted load does
    want = torch.load(checkpoint, weights_only=False)
    for pickle_module in (None, safe_checkpoint.restricted_pickle):
        got = safe_checkpoint.load_local_checkpoint(checkpoint) \
            if pickle_module is None else torch.load(
                checkpoint, pickle_module=pickle_module, weights_only=False)
        assert got.keys() == want.keys()
        assert got['message_hub'].keys() == want['message_hub'].keys()
        for name, tensor in want['state_dict'].items():
            assert torch.equal(got['state_dict'][name], tensor), name
    log = run_tool(
        *run, 'train_cfg.max_iters=2', '--resume', checkpoint, env=env)
    assert 'resumed epoch: 0, iter: 1' in log
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))

"""What tests share besides fixtures: the repository's paths, the devices
to parametrize over, and running a tool."""
import os.path as osp
import runpy
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHAPES_CONFIG = osp.join(ROOT, 'configs', 'shapes',
                         'retinanet_r18-tiny_fpn_shapes.py')

# Parametrize a test over the CPU and, where there is one, the GPU.
DEVICES = [
    'cpu',
    pytest.param(
        'cuda',
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason='needs a GPU'))
]


def load_tool(*path: str) -> SimpleNamespace:
    """A script under ``tools/`` as a namespace: tools are scripts, not
    packages, so they are loaded from their files (no sys.path edits)."""
    return SimpleNamespace(**runpy.run_path(osp.join(ROOT, 'tools', *path)))


def run_tool(*args, env=None, timeout=600):
    """Run ``python ARGS`` from the repository root; fail with its output."""
    proc = subprocess.run([sys.executable, *args],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (
        f'{args} exited {proc.returncode}\n{proc.stdout[-4000:]}\n'
        f'{proc.stderr[-4000:]}')
    return proc.stdout + proc.stderr

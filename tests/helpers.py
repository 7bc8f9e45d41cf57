"""What tests share besides fixtures: the repository's paths, the devices
to parametrize over, running a tool, and the dense-head tests' batch."""
import os.path as osp
import runpy
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from mmdet_lossplug.torch_features import HAS_LIBRARY_FAKE_KERNELS

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

# What only torch >= 2.4 gives the op (mmdet_lossplug/torch_features.py).
needs_fake_kernels = pytest.mark.skipif(
    not HAS_LIBRARY_FAKE_KERNELS,
    reason=f'torch {torch.__version__} has no torch.library.register_fake: '
    'the op has no fake kernels, and compiled code runs it eagerly')

# AMP's GradScaler on the CPU (torch.amp.GradScaler('cpu')): torch >= 2.3.
needs_cpu_grad_scaler = pytest.mark.skipif(
    not hasattr(torch.amp, 'GradScaler'),
    reason=f'torch {torch.__version__} has no torch.amp.GradScaler, the '
    "GradScaler for the CPU (torch.cuda.amp's needs a GPU)")


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


def dense_head_batch(strides=(8, 16, 32)):
    """Two 64 x 64 images for a dense head of 8 input channels: seeded FPN
    features at ``strides``, three boxes of classes 0-2, and the metas."""
    # Imported here: make cuda-build runs the op tests, which import this
    # module, in an environment without mmengine.
    from mmengine.structures import InstanceData
    torch.manual_seed(0)
    feats = [torch.randn(2, 8, 64 // s, 64 // s) for s in strides]
    gts = [
        InstanceData(
            bboxes=torch.tensor([[4., 6., 30., 40.], [30., 30., 60., 62.]]),
            labels=torch.tensor([0, 2])),
        InstanceData(
            bboxes=torch.tensor([[10., 10., 50., 30.]]),
            labels=torch.tensor([1])),
    ]
    metas = [dict(img_shape=(64, 64), pad_shape=(64, 64))] * 2
    return feats, gts, metas

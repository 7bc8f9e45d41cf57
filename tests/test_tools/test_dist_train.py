"""tools/dist_train.sh and dist_test.sh on two CPU processes (torchrun,
gloo): a DR RetinaNet trains a few iterations and both ranks end with equal
weights; distributed evaluation (COCO AP and D-ECE, each rank matching its
own images) gives what one process gives. GPUs are hidden from the ranks
(two ranks on one GPU would take NCCL), and PYTHONPATH keeps what the
caller had (the GPU command's site folder) behind the checkout."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from ..helpers import ROOT, SHAPES_CONFIG, run_tool
from .test_calibrate import _metrics

pytestmark = pytest.mark.integration  # runs the tools / trains


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _run_script(script: str, *args, env) -> str:
    """Run ``tools/SCRIPT ARGS``; fail with its output."""
    proc = subprocess.run([osp.join(ROOT, 'tools', script), *args],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    return log


def test_dist_train_two_cpu_processes(tmp_path, shapes_root):
    config = tmp_path / 'dr_shapes.py'
    config.write_text(f"_base_ = '{SHAPES_CONFIG}'\n"
                      "custom_imports = dict(imports=['mmdet_lossplug',\n"
                      "    'tests.test_tools.rank_weights_hook'],\n"
                      '    allow_failed_imports=False)\n'
                      "custom_hooks = [dict(type='SaveRankWeightsHook')]\n"
                      "model = dict(bbox_head=dict(type='DRRetinaHead',\n"
                      "    loss_cls=dict(_delete_=True, type='DRLoss')))\n")
    work_dir = tmp_path / 'work'
    env = dict(
        os.environ,
        SHAPES_ROOT=shapes_root,
        PORT=str(_free_port()),
        PYTHONPATH=os.pathsep.join(
            filter(None, [ROOT, os.environ.get('PYTHONPATH')])),
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1',
        PYTHON=sys.executable)
    log = _run_script(
        'dist_train.sh',
        str(config),
        '2',
        '--work-dir',
        str(work_dir),
        '--cfg-options',
        'train_cfg.max_iters=3',
        'train_cfg.val_interval=100',
        'train_dataloader.batch_size=2',
        'default_hooks.logger.interval=1',
        env=env)
    assert 'DRLoss' in log and 'gloo' in log
    assert 'Iter(train) [3/3]' in log
    rank0 = torch.load(work_dir / 'rank0.pth')
    rank1 = torch.load(work_dir / 'rank1.pth')
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # Training moved the weights (BN running stats aside, they are synced).
    cls_bias = rank0['bbox_head.retina_cls.bias']
    assert cls_bias.abs().max() > 0  # initialised at 0 for prior 0.5

    checkpoint = str(work_dir / 'iter_3.pth')
    distributed = _metrics(
        _run_script(
            'dist_test.sh',
            str(config),
            checkpoint,
            '2',
            '--work-dir',
            str(tmp_path / 'dist_test'),
            env=env))
    single = _metrics(
        run_tool(
            'tools/test.py',
            str(config),
            checkpoint,
            '--work-dir',
            str(tmp_path / 'test'),
            env=env))
    assert distributed['calibration/d_ece_50'] > 0
    for key in ('coco/bbox_mAP', 'calibration/d_ece_50',
                'calibration/adaptive_d_ece_50', 'calibration/d_ece_75'):
        assert distributed[key] == single[key], key

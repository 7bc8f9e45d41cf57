"""tools/dist_train.sh and dist_test.sh on two CPU processes (torchrun,
gloo): a DR RetinaNet trains a few iterations and both ranks end with equal
weights; distributed evaluation (COCO AP and D-ECE, each rank matching its
own images) gives what one process gives. The same from a non-editable
install in a fresh venv, with the compiled op, on one node of two processes
and on two "nodes" of one process each (NNODES, NODE_RANK, MASTER_ADDR),
to the same weights. GPUs are hidden from the ranks (two ranks on one GPU
would take NCCL), and PYTHONPATH keeps what the caller had (the GPU
command's site folder). The Slurm scripts hand srun what they document."""
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import sysconfig

import pytest
import torch

from ..helpers import ROOT, SHAPES_CONFIG, run_tool
from .test_calibrate import _metrics

pytestmark = pytest.mark.integration  # runs the tools / trains


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _start_script(script: str, *args, env, cwd=ROOT) -> subprocess.Popen:
    return subprocess.Popen([osp.join(ROOT, 'tools', script), *args],
                            cwd=cwd,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True)


def _finish(proc: subprocess.Popen) -> str:
    """Wait for a started script; fail with its output."""
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log[-6000:]
    return log


def _run_script(script: str, *args, env, cwd=ROOT) -> str:
    """Run ``tools/SCRIPT ARGS``; fail with its output."""
    return _finish(_start_script(script, *args, env=env, cwd=cwd))


def _dr_config(tmp_path, hook_module: str) -> str:
    """The shapes RetinaNet with DR loss, saving every rank's weights."""
    config = tmp_path / 'dr_shapes.py'
    config.write_text(f"_base_ = '{SHAPES_CONFIG}'\n"
                      "custom_imports = dict(imports=['mmdet_lossplug',\n"
                      f"    '{hook_module}'],\n"
                      '    allow_failed_imports=False)\n'
                      "custom_hooks = [dict(type='SaveRankWeightsHook')]\n"
                      "model = dict(bbox_head=dict(type='DRRetinaHead',\n"
                      "    loss_cls=dict(_delete_=True, type='DRLoss')))\n")
    return str(config)


# A fixed seed: separate runs (one node, two nodes) start alike.
TRAIN_ARGS = ('--cfg-options', 'train_cfg.max_iters=3',
              'train_cfg.val_interval=100', 'train_dataloader.batch_size=2',
              'default_hooks.logger.interval=1', 'randomness.seed=0')


def _rank_weights(work_dir):
    """Both ranks' weights after training, checked equal; rank 0's."""
    rank0 = torch.load(osp.join(work_dir, 'rank0.pth'))
    rank1 = torch.load(osp.join(work_dir, 'rank1.pth'))
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    return rank0


def test_dist_train_two_cpu_processes(tmp_path, shapes_root):
    config = _dr_config(tmp_path, 'tests.test_tools.rank_weights_hook')
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
        config,
        '2',
        '--work-dir',
        str(work_dir),
        *TRAIN_ARGS,
        env=env)
    assert 'DRLoss' in log and 'gloo' in log
    assert 'Iter(train) [3/3]' in log
    rank0 = _rank_weights(work_dir)
    # Training moved the weights (BN running stats aside, they are synced).
    cls_bias = rank0['bbox_head.retina_cls.bias']
    assert cls_bias.abs().max() > 0  # initialised at 0 for prior 0.5

    checkpoint = str(work_dir / 'iter_3.pth')
    distributed = _metrics(
        _run_script(
            'dist_test.sh',
            config,
            checkpoint,
            '2',
            '--work-dir',
            str(tmp_path / 'dist_test'),
            env=env))
    single = _metrics(
        run_tool(
            'tools/test.py',
            config,
            checkpoint,
            '--work-dir',
            str(tmp_path / 'test'),
            env=env))
    assert distributed['calibration/d_ece_50'] > 0
    for key in ('coco/bbox_mAP', 'calibration/d_ece_50',
                'calibration/adaptive_d_ece_50', 'calibration/d_ece_75'):
        assert distributed[key] == single[key], key


def _fresh_venv_with_installed_package(tmp_path) -> str:
    """A new venv whose only mmdet_lossplug is a non-editable install of
    this checkout (its extension compiled by pip), finding the rest of the
    stack (torch, mmcv, mmdet) in this environment's site-packages."""
    venv = tmp_path / 'venv'
    subprocess.run([sys._base_executable, '-m', 'venv', str(venv)], check=True)
    python = str(venv / 'bin' / 'python')
    purelib = 'import sysconfig; print(sysconfig.get_path("purelib"))'
    own = subprocess.run([python, '-c', purelib],
                         check=True,
                         capture_output=True,
                         text=True).stdout.strip()
    # a path line: the stack's packages, but not the .pth files (our
    # editable install) among them
    with open(osp.join(own, 'zz_stack.pth'), 'w') as f:
        f.write(sysconfig.get_path('purelib') + '\n')
    install = subprocess.run([
        python, '-m', 'pip', 'install', '--no-deps', '--no-build-isolation',
        '--disable-pip-version-check', ROOT
    ],
                             capture_output=True,
                             text=True,
                             timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr
    where = subprocess.run([
        python, '-c', 'import mmdet_lossplug.ops as o; '
        'print(o.__file__, o.HAS_EXT)'
    ],
                           cwd=tmp_path,
                           check=True,
                           capture_output=True,
                           text=True).stdout.split()
    assert where == [
        osp.join(own, 'mmdet_lossplug', 'ops', '__init__.py'), 'True'
    ], where
    return python


def test_installed_package_trains_on_one_node_and_on_two(
        tmp_path, shapes_root):
    """A non-editable install (no checkout on the path) trains with the
    compiled op and no fallback to the reference; one node of two
    processes and two nodes of one process each end with the same
    weights."""
    python = _fresh_venv_with_installed_package(tmp_path)
    hooks = tmp_path / 'hooks'
    hooks.mkdir()
    shutil.copy(
        osp.join(ROOT, 'tests', 'test_tools', 'rank_weights_hook.py'), hooks)
    config = _dr_config(tmp_path, 'rank_weights_hook')
    env = dict(
        os.environ,
        SHAPES_ROOT=shapes_root,
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(hooks), os.environ.get('PYTHONPATH')])),
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1',
        PYTHON=python)

    one_node = tmp_path / 'one_node'
    logs = [
        _run_script(
            'dist_train.sh',
            config,
            '2',
            '--work-dir',
            str(one_node),
            *TRAIN_ARGS,
            env=dict(env, PORT=str(_free_port())),
            cwd=tmp_path)
    ]
    two_nodes = tmp_path / 'two_nodes'
    nodes = dict(NNODES='2', MASTER_ADDR='127.0.0.1', PORT=str(_free_port()))
    started = [
        _start_script(
            'dist_train.sh',
            config,
            '1',
            '--work-dir',
            str(two_nodes),
            *TRAIN_ARGS,
            env=dict(env, NODE_RANK=str(rank), **nodes),
            cwd=tmp_path) for rank in (0, 1)
    ]
    logs += [_finish(proc) for proc in started]
    for log in logs:
        assert 'compiled DR op not used' not in log, log[-3000:]
    assert 'Iter(train) [3/3]' in logs[0] and 'Iter(train) [3/3]' in logs[1]
    want = _rank_weights(one_node)
    got = _rank_weights(two_nodes)
    for name in want:
        assert torch.equal(got[name], want[name]), name


@pytest.mark.parametrize('script, args, tool, tool_args', [
    ('slurm_train.sh', ['part', 'job', 'cfg.py', 'work', '--amp'
                        ], 'train.py', ['cfg.py', '--work-dir=work', '--amp']),
    ('slurm_test.sh', ['part', 'job', 'cfg.py', 'ckpt.pth', '--out', 'o.pkl'
                       ], 'test.py', ['cfg.py', 'ckpt.pth', '--out', 'o.pkl']),
])
def test_slurm_scripts_hand_srun_what_they_document(tmp_path, script, args,
                                                    tool, tool_args):
    """An ``srun`` on PATH that records its arguments: the task count,
    tasks per node, GPUs, CPUs and extra options come from GPUS,
    GPUS_PER_NODE, CPUS_PER_TASK and SRUN_ARGS; each task runs the tool
    with ``--launcher slurm``."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    record = tmp_path / 'srun_args'
    srun = bin_dir / 'srun'
    srun.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    srun.chmod(0o755)
    env = dict(
        os.environ,
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        GPUS='16',
        GPUS_PER_NODE='8',
        CPUS_PER_TASK='4',
        SRUN_ARGS='--time=60 --qos=low',
        PYTHON='py')
    subprocess.run([osp.join(ROOT, 'tools', script), *args],
                   env=env,
                   check=True,
                   timeout=60)
    assert record.read_text().splitlines() == [
        '-p', 'part', '--job-name=job', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=4', '--kill-on-bad-exit=1',
        '--time=60', '--qos=low', 'py', '-u',
        osp.join(ROOT, 'tools', tool), *tool_args, '--launcher', 'slurm'
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason='has a GPU')
@pytest.mark.parametrize('launcher', ['slurm', 'mpi'])
def test_slurm_and_mpi_launchers_without_gpus_are_a_clear_error(launcher):
    proc = subprocess.run([
        sys.executable, 'tools/train.py', SHAPES_CONFIG, '--launcher', launcher
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert f'--launcher {launcher} needs GPUs' in proc.stderr
    assert 'tools/dist_train.sh' in proc.stderr

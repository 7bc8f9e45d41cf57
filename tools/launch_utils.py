"""What tools/train.py and tools/test.py share: the options of a launch,
and what they do alike to a config before the runner is built (register
mmdet_lossplug, apply the command line, pick the work dir, make
CPU-distributed runs with torchrun + gloo work, load checkpoints safely
with :mod:`mmdet_lossplug.engine.safe_checkpoint`)."""
import argparse
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmdet.utils import register_all_modules
from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdet_lossplug.engine import use_safe_checkpoint_loading


def parse_launch_args(parser: argparse.ArgumentParser, argv=None):
    """Add ``--cfg-options``, ``--launcher``, ``--local-rank`` and parse."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, e.g. train_cfg.max_iters=10')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def prepare_launch(cfg, args) -> None:
    """Apply ``--cfg-options``, ``--launcher`` and ``--work-dir`` to ``cfg``
    in place."""
    register_all_modules(init_default_scope=False)
    use_safe_checkpoint_loading()
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.launcher in ('slurm', 'mpi') and not torch.cuda.is_available():
        # mmengine's init_dist gives each slurm / mpi task a GPU
        raise RuntimeError(
            f'--launcher {args.launcher} needs GPUs (one per task), and '
            'this process sees none; on CPUs launch with '
            'tools/dist_train.sh / dist_test.sh (torchrun, gloo), on one '
            'node or several (NNODES, NODE_RANK, MASTER_ADDR, PORT)')
    if args.launcher == 'pytorch' and not torch.cuda.is_available():
        # Processes without GPUs: NCCL cannot run, mmengine 0.10.7's
        # init_dist calls torch.cuda.set_device (absent from CPU builds),
        # and DDP must not get device_ids (mmdet_lossplug/engine/cpu_ddp.py).
        # The runner skips init_dist for a process group that exists.
        cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
        if not dist.is_initialized():
            dist.init_process_group(backend='gloo')
        cfg.model_wrapper_cfg = dict(
            cfg.get('model_wrapper_cfg', None) or {},
            type='DeviceAwareDistributedDataParallel')


def finish_launch() -> None:
    """Leave the process group together: without it a rank that exits while
    another still evaluates can tear down gloo under the other's feet, and
    a group left to interpreter shutdown can abort the process ("terminate
    called without an active exception") after a successful run."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def build_runner(cfg):
    """MMDetection's choice: the config's ``runner_type`` if it names one."""
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)

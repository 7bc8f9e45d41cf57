"""What tools/train.py and tools/test.py share: the options of a launch,
and what they do alike to a config before the runner is built (register
mmdet_lossplug, apply the command line, pick the work dir, make
CPU-distributed runs with torchrun + gloo work, load checkpoints safely)."""
import argparse
import os
import os.path as osp
import pickle

import numpy as np
import torch
import torch.distributed as dist
from mmdet.utils import register_all_modules
from mmengine.config import DictAction
from mmengine.logging import HistoryBuffer
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader

import mmdet_lossplug  # noqa: F401  (registers our modules)


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
    if args.launcher != 'none' and not torch.cuda.is_available():
        # Processes without GPUs: NCCL cannot run, mmengine 0.10.7's
        # init_dist calls torch.cuda.set_device (absent from CPU builds),
        # and DDP must not get device_ids (mmdet_lossplug/engine/cpu_ddp.py).
        # The runner skips init_dist for a process group that exists.
        cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
        if args.launcher == 'pytorch' and not dist.is_initialized():
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


# The statistics HistoryBuffer defines; a process may register more.
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def history_buffer_method(owner, name: str):
    """``getattr`` as an mmengine checkpoint may use it, and no further:
    HistoryBuffer pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. A general getattr would let a
    checkpoint reach any attribute (``__globals__``, ``os.system``)."""
    methods = set(HISTORY_BUFFER_METHODS) | set(
        HistoryBuffer._statistics_methods)
    if owner is not HistoryBuffer or name not in methods:
        raise pickle.UnpicklingError(
            f'checkpoint asks for getattr({owner!r}, {name!r}); only '
            f'HistoryBuffer statistics methods {sorted(methods)} are allowed')
    return getattr(owner, name)


def mmengine_checkpoint_globals() -> list:
    """What an mmengine checkpoint pickles besides tensors and containers,
    read off a real run's checkpoint with
    ``torch.serialization.get_unsafe_globals_in_checkpoint``: the message
    hub's HistoryBuffer, its statistics methods (through getattr) and the
    numpy arrays, scalars and dtypes in it."""
    # numpy's reconstructors as pickle names them (numpy 1 and 2 differ)
    array_reconstruct = np.zeros(0).__reduce__()[0]
    scalar_reconstruct = np.float64(0).__reduce__()[0]
    # a dtype is rebuilt as np.dtype('f8') and set up as its own class
    numeric_dtypes = {
        type(np.dtype(code))
        for code in np.typecodes['AllInteger'] + np.typecodes['AllFloat'] + '?'
    }
    return [
        HistoryBuffer, np.ndarray, np.dtype, *numeric_dtypes,
        array_reconstruct, scalar_reconstruct,
        (history_buffer_method, 'builtins.getattr')
    ]


def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's loader of local files, with ``weights_only=True``: a
    checkpoint that would run code is refused, whatever torch's default."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if torch.__version__ >= (2, 6):
            raise
        raise RuntimeError(
            f'{filename}: loading an mmengine checkpoint safely needs torch '
            f'>= 2.6 (safe globals by name), found {torch.__version__}; '
            'plain state dicts load with any torch') from err


def use_safe_checkpoint_loading() -> None:
    """Load local checkpoints (``--resume``, ``load_from``, the test
    checkpoint) with ``weights_only=True``, allowing exactly the types that
    mmengine's checkpoints hold (PyTorch's safe globals)."""
    if torch.__version__ >= (2, 6):
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)

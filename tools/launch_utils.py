"""What tools/train.py and tools/test.py do alike to a config before the
runner is built: register mmdet_lossplug, apply the command line, pick the
work dir, and make CPU-distributed runs (torchrun + gloo) work."""
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmdet.utils import register_all_modules

import mmdet_lossplug  # noqa: F401  (registers our modules)

# mmengine 0.10.7 predates torch 2.6's ``torch.load(weights_only=True)``
# default: its checkpoints pickle the message hub (HistoryBuffer, numpy
# scalars), so loading one to test or resume fails. The checkpoints these
# tools load are the user's own; torch reads this switch at load time.
os.environ.setdefault('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')


def prepare_launch(cfg, args) -> None:
    """Apply ``--cfg-options``, ``--launcher`` and ``--work-dir`` to ``cfg``
    in place."""
    register_all_modules(init_default_scope=False)
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

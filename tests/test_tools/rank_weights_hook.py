"""Test helper loaded through ``custom_imports``: every rank saves its own
weights after training, so the distributed test can compare them (the
checkpoint hook saves rank 0's only)."""
import os.path as osp

import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmdet_lossplug.engine.hooks.runner_model import unwrapped_model


@HOOKS.register_module()
class SaveRankWeightsHook(Hook):

    def after_train(self, runner) -> None:
        model = unwrapped_model(runner)
        torch.save({
            k: v.detach().cpu()
            for k, v in model.state_dict().items()
        }, osp.join(runner.work_dir, f'rank{get_rank()}.pth'))

"""Test helper loaded through ``custom_imports``: every rank saves its own
weights after training, so the distributed test can compare them (the
checkpoint hook saves rank 0's only)."""
import os.path as osp

import torch
from mmdet.registry import HOOKS
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class SaveRankWeightsHook(Hook):

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        torch.save({
            k: v.detach().cpu()
            for k, v in model.state_dict().items()
        }, osp.join(runner.work_dir, f'rank{get_rank()}.pth'))

"""Every config under configs/ loads, names only registered metrics and
hooks, builds its model and runs one training step (forward, backward,
optimizer step) with finite losses."""
import glob
import os.path as osp

import pytest
import torch
from mmdet.registry import HOOKS, METRICS, MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

import mmdet_lossplug  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))


def test_configs_found():
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize(
    'config', CONFIGS, ids=[osp.relpath(c, ROOT) for c in CONFIGS])
def test_config_builds_and_trains_one_step(config):
    cfg = Config.fromfile(config)
    assert 'mmdet_lossplug' in cfg.custom_imports['imports']
    init_default_scope('mmdet')
    for key in ('val_evaluator', 'test_evaluator'):
        metrics = cfg[key] if isinstance(cfg[key], list) else [cfg[key]]
        for metric in metrics:
            assert METRICS.get(metric['type']) is not None, metric
    for hook in cfg.get('custom_hooks', []):
        assert HOOKS.get(hook['type']) is not None, hook
    cfg.model.backbone.init_cfg = None  # no download of pretrained weights
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    head = cfg.model.get('bbox_head') or cfg.model.roi_head.bbox_head
    num_classes = head.num_classes
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    packed = demo_mm_inputs(
        batch_size=2,
        image_shapes=[(3, 128, 160), (3, 96, 128)],
        num_items=[3, 2],
        # mmdet's demo draws labels with randint(1, num_classes), which
        # fails for one class: draw from two and relabel everything class 0
        num_classes=max(num_classes, 2),
        with_mask=with_mask)
    if num_classes == 1:
        for sample in packed['data_samples']:
            sample.gt_instances.labels.zero_()
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
    before = [p.detach().clone() for p in model.parameters()]
    log_vars = model.train_step(packed, optim_wrapper)
    assert log_vars['loss'] > 0
    for name, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), (name, value)
    loss_cls_type = head.loss_cls.type
    cls_loss = (
        model.bbox_head.loss_cls
        if hasattr(model, 'bbox_head') else model.roi_head.bbox_head.loss_cls)
    assert type(cls_loss).__name__ == loss_cls_type
    changed = any(not torch.equal(b, p)
                  for b, p in zip(before, model.parameters()))
    assert changed, 'the optimizer step changed no parameter'

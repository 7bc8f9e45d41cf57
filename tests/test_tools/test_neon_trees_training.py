"""One training step of configs/neon_trees on real tiles through the
config's own dataset and pipeline: finite losses, weights that move."""
import os

import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmdet_lossplug  # noqa: F401
from ..conftest import ROOT

CONFIG = os.path.join(ROOT, 'configs', 'neon_trees',
                      'retinanet_r18-tiny_fpn_neon-trees.py')


def test_one_training_step_on_real_tiles(neon_trees, monkeypatch):
    root, datasets = neon_trees
    monkeypatch.setenv('NEON_TREES_ROOT', str(root))
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    # filter_empty_gt: the training tiles with at least one tree
    assert len(dataset) == len({
        a['image_id']
        for a in datasets['cross_site']['train']['annotations']
    })
    batch = pseudo_collate([dataset[0], dataset[1]])
    assert all(len(s.gt_instances) > 0 for s in batch['data_samples'])

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = [p.detach().clone() for p in model.parameters()]
    losses = model.train_step(batch, optim_wrapper)
    assert set(losses) >= {'loss_cls', 'loss_bbox'}
    assert all(torch.isfinite(v).all() for v in losses.values())
    moved = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert sum(moved) > len(moved) // 2

"""One training step of each configs/neon_trees model on real tiles through
the config's own dataset and pipeline: finite losses, weights that move;
the MobileNetV2 models start from the converted ImageNet weights and keep
their frozen stages."""
import copy
import os

import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import mmdet_lossplug  # noqa: F401
from mmdet_lossplug.loss_comparison.rows import ANCHOR_FREE
from ..helpers import ROOT

pytestmark = pytest.mark.integration  # runs the tools / trains


def config_path(name):
    return os.path.join(ROOT, 'configs', 'neon_trees', name)


def train_one_step(cfg, split, datasets):
    """Build the config's training set and model, check the set against
    the converter's tiles, take one step; return the model, its state
    before the step and the step's losses."""
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    # filter_empty_gt: the training tiles with at least one tree
    assert len(dataset) == len(
        {a['image_id']
         for a in datasets[split]['train']['annotations']})
    batch = pseudo_collate([dataset[0], dataset[1]])
    assert all(len(s.gt_instances) > 0 for s in batch['data_samples'])

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {n: v.clone() for n, v in model.state_dict().items()}
    losses = model.train_step(batch, optim_wrapper)
    assert all(torch.isfinite(v).all() for v in losses.values())
    return model, before, losses


@pytest.mark.parametrize('split', ['in_site', 'cross_site'])
@pytest.mark.parametrize(
    'config, row, loss_keys',
    [('retinanet_mobilenetv2_fpn_neon-trees.py', None,
      {'loss_cls', 'loss_bbox'}),
     ('faster-rcnn_mobilenetv2_fpn_neon-trees.py', None,
      {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'}),
     ('fcos_mobilenetv2_fpn_neon-trees.py', None,
      {'loss_cls', 'loss_bbox', 'loss_centerness'}),
     ('fcos_mobilenetv2_fpn_neon-trees.py', 'dr',
      {'loss_cls', 'loss_bbox', 'loss_centerness'}),
     ('atss_mobilenetv2_fpn_neon-trees.py', 'dr',
      {'loss_cls', 'loss_bbox', 'loss_centerness'})])
def test_mobilenetv2_config_trains_from_imagenet_weights(
        config, row, loss_keys, split, neon_trees, pretrained_root,
        monkeypatch):
    """Each model, and DR loss (the anchor-free comparison's row) in
    DRFCOSHead and DRATSSHead, one step on real tiles."""
    root, datasets = neon_trees
    monkeypatch.setenv('NEON_TREES_ROOT', str(root))
    monkeypatch.setenv('NEON_TREES_SPLIT', split)
    monkeypatch.setenv('PRETRAINED_ROOT', str(pretrained_root))
    cfg = Config.fromfile(config_path(config))
    if row is not None:  # DR loss in the head's DR variant
        head = cfg.model.bbox_head.type
        cfg.merge_from_dict(dict(model=copy.deepcopy(ANCHOR_FREE.rows[row])))
        cfg.model.bbox_head.type = 'DR' + head
    (checkpoint, ) = pretrained_root.glob('*.pth')
    imagenet = torch.load(
        checkpoint, map_location='cpu', weights_only=True)['state_dict']

    model, before, losses = train_one_step(cfg, split, datasets)
    assert set(losses) >= loss_keys
    # init_weights loaded every tensor of the ImageNet backbone.
    for name, value in imagenet.items():
        assert torch.equal(before['backbone.' + name], value), name
    # norm_eval: BN keeps ImageNet's statistics while training.
    after = model.state_dict()
    for name, value in imagenet.items():
        if 'running_' in name:
            assert torch.equal(after['backbone.' + name], value), name
    # The stem and the stages up to frozen_stages stay, and so does conv2
    # (out index 7) when no output comes from it; the rest trains.
    backbone = cfg.model.backbone
    idle = ('backbone.conv1.', ) + tuple(
        f'backbone.layer{i}.' for i in range(1, backbone.frozen_stages + 1))
    if 7 not in backbone.out_indices:
        idle += ('backbone.conv2.', )
    for name, param in model.named_parameters():
        moved = not torch.equal(before[name], param)
        assert moved != name.startswith(idle), name

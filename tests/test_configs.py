"""Every config under configs/ loads, names only registered metrics and
hooks, builds its model and runs one training step (forward, backward,
optimizer step) with finite losses, and is listed in the OpenMMLab model
index (model-index.yml -> each folder's metafile.yml)."""
import glob
import os
import os.path as osp

import pytest
import torch
import yaml
from mmdet.registry import HOOKS, METRICS, MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmdet_lossplug  # noqa: F401
from .helpers import SHAPES_CONFIG

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True))
# The configs a user trains: inherited fragments (_base_) are not models.
MODEL_CONFIGS = [
    osp.relpath(c, ROOT) for c in CONFIGS
    if '_base_' not in osp.relpath(c, ROOT).split(os.sep)
]


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


def read_yaml(relpath):
    with open(osp.join(ROOT, relpath)) as f:
        return yaml.safe_load(f)


def test_model_index_lists_every_config():
    metafiles = read_yaml('model-index.yml')['Import']
    # one metafile per config folder, each imported by the index
    folders = sorted({osp.dirname(c) for c in MODEL_CONFIGS})
    assert sorted(osp.dirname(m) for m in metafiles) == folders
    listed = []
    for metafile in metafiles:
        meta = read_yaml(metafile)
        collections = {c['Name']: c for c in meta['Collections']}
        for model in meta['Models']:
            assert osp.dirname(model['Config']) == osp.dirname(metafile)
            collection = collections[model['In Collection']]
            assert collection['README'] == osp.join(
                osp.dirname(metafile), 'README.md'), model['Name']
            assert 'Weights' not in model  # none are released
            # mim shows Results as what this config gave; none was trained
            # on COCO or VOC, so a number there would be a paper's.
            assert 'Results' not in model, (
                f"{model['Name']}: Results in {metafile} are read as this "
                "config's own; the paper's number belongs in the README")
            listed.append(model)
    configs = [m['Config'] for m in listed]
    assert not set(configs) - set(MODEL_CONFIGS), 'listed, no such file'
    assert not set(MODEL_CONFIGS) - set(configs), 'config not listed'
    assert len(configs) == len(set(configs)), 'a config listed twice'
    names = [m['Name'] for m in listed]
    assert len(names) == len(set(names)), 'model names must be unique'


def _tables(markdown: str):
    """The header cells and the rows of each markdown table."""
    tables, rows = [], []
    for line in markdown.splitlines() + ['']:
        if line.startswith('|'):
            rows.append([c.strip() for c in line.strip('|').split('|')])
        elif rows:
            tables.append((rows[0], rows[2:]))
            rows = []
    return tables


def test_a_papers_numbers_stand_beside_an_empty_ours_column():
    """Every README table of a paper's numbers has an "ours" column, empty
    until a run of the config is recorded (metafiles hold no Results)."""
    papers = 0
    for metafile in read_yaml('model-index.yml')['Import']:
        readme = osp.join(ROOT, osp.dirname(metafile), 'README.md')
        with open(readme) as f:
            tables = _tables(f.read())
        for header, rows in tables:
            if not any('paper' in cell.lower() for cell in header):
                continue
            papers += 1
            ours = [
                k for k, cell in enumerate(header) if 'ours' in cell.lower()
            ]
            assert ours, f'{readme}: a table of paper numbers {header} ' \
                'has no "ours" column'
            for row in rows:
                assert all(row[k] == '' for k in ours), (
                    f'{readme}: {row} fills an "ours" cell; record the run '
                    '(command, log) before filling it')
    assert papers >= 5  # polyloss 3, dr_loss 3, calibration 1


# DR loss in heads other than RetinaNet, each beside its focal baseline.
DENSE_HEAD_PAIRS = [
    ('configs/dr_loss/fcos_r50-caffe_fpn_gn-head_focal_1x_coco.py',
     'configs/dr_loss/fcos_r50-caffe_fpn_gn-head_dr_1x_coco.py'),
    ('configs/dr_loss/atss_r50_fpn_focal_1x_coco.py',
     'configs/dr_loss/atss_r50_fpn_dr_1x_coco.py'),
]


def _flat(cfg, path=()):
    """``{'a.b.c': value}`` of a nested config."""
    if isinstance(cfg, dict) and cfg:
        return {
            key: value
            for name, child in cfg.items()
            for key, value in _flat(child, path + (name, )).items()
        }
    return {'.'.join(path): cfg}


@pytest.mark.parametrize(
    'focal,dr', DENSE_HEAD_PAIRS, ids=[p[1] for p in DENSE_HEAD_PAIRS])
def test_dr_dense_head_config_changes_only_the_head_loss_and_threshold(
        focal, dr):
    focal, dr = (
        _flat(Config.fromfile(osp.join(ROOT, c)).to_dict())
        for c in (focal, dr))
    changed = {
        key
        for key in set(focal) | set(dr) if focal.get(key) != dr.get(key)
    }
    assert 'model.bbox_head.type' in changed
    head_loss_and_threshold = {
        key
        for key in changed if key.startswith('model.bbox_head.loss_cls.')
    } | {'model.bbox_head.type', 'model.test_cfg.score_thr'}
    assert changed <= head_loss_and_threshold, changed
    assert dr['model.bbox_head.loss_cls.type'] == 'DRLoss'
    assert dr['model.test_cfg.score_thr'] > focal['model.test_cfg.score_thr']


@pytest.mark.integration
@pytest.mark.parametrize(
    'config', [c for pair in DENSE_HEAD_PAIRS for c in pair],
    ids=[c for pair in DENSE_HEAD_PAIRS for c in pair])
def test_dense_head_config_trains_one_step_on_the_shapes_data(
        config, shapes_root):
    """Two shapes images through the config's own training pipeline
    (resized to 128 pixels for a CPU step) and data preprocessor."""
    cfg = Config.fromfile(osp.join(ROOT, config))
    shapes = Config.fromfile(SHAPES_CONFIG).train_dataloader.dataset
    dataset = cfg.train_dataloader.dataset
    dataset.update(
        data_root=shapes_root,
        ann_file=shapes.ann_file,
        data_prefix=shapes.data_prefix,
        metainfo=shapes.metainfo,
        pipeline=[
            dict(t, scale=(128, 128)) if t['type'] == 'Resize' else t
            for t in dataset.pipeline
        ])
    init_default_scope('mmdet')
    loader = Runner.build_dataloader(
        dict(
            cfg.train_dataloader,
            batch_size=2,
            num_workers=0,
            persistent_workers=False),
        seed=0)
    cfg.model.backbone.init_cfg = None  # no download of pretrained weights
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
    before = [p.detach().clone() for p in model.bbox_head.parameters()]
    log_vars = model.train_step(next(iter(loader)), optim_wrapper)
    assert {'loss_cls', 'loss_bbox', 'loss_centerness'} <= set(log_vars)
    for name, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), (name, value)
    assert log_vars['loss_bbox'] > 0  # the shapes are positives
    assert type(model.bbox_head.loss_cls).__name__ == (
        cfg.model.bbox_head.loss_cls.type)
    assert any(not torch.equal(b, p)
               for b, p in zip(before, model.bbox_head.parameters()))

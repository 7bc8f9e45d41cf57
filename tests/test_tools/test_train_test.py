"""End to end: tools/train.py trains on generated data, tools/test.py
evaluates the checkpoint with pycocotools, and MMDetection's own
tools/train.py loads our losses through custom_imports alone."""
import os
import os.path as osp
import pickle
import re

import mmdet
import pytest

from ..helpers import ROOT, SHAPES_CONFIG, run_tool

SHORT_RUN = [
    'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
    'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1',
    'train_dataloader.batch_size=4'
]
pytestmark = pytest.mark.integration  # runs the tools / trains


def _env(shapes_root):
    return dict(os.environ, SHAPES_ROOT=shapes_root)


def _without_checkout() -> str:
    """PYTHONPATH without the checkout: the plugin must import as installed
    (other entries, such as the GPU command's site folder, stay)."""
    return os.pathsep.join(
        p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
        if p and osp.realpath(p) != osp.realpath(ROOT))


def test_train_then_test_polyfocal(tmp_path, shapes_root):
    work_dir = str(tmp_path / 'train')
    log = run_tool(
        'tools/train.py',
        SHAPES_CONFIG,
        '--work-dir',
        work_dir,
        '--cfg-options',
        *SHORT_RUN,
        'model.bbox_head.loss_cls.type=PolyFocalLoss',
        'model.bbox_head.loss_cls.epsilon=-1.0',
        env=_env(shapes_root))
    assert 'PolyFocalLoss' in log
    losses = [float(x) for x in re.findall(r'loss_cls: ([0-9.]+)', log)]
    assert len(losses) == 4 and all(x > 0 for x in losses)
    checkpoint = osp.join(work_dir, 'iter_4.pth')
    assert osp.isfile(checkpoint)

    out = str(tmp_path / 'preds.pkl')
    log = run_tool(
        'tools/test.py',
        SHAPES_CONFIG,
        checkpoint,
        '--work-dir',
        str(tmp_path / 'test'),
        '--out',
        out,
        '--cfg-options',
        # 4 iterations leave every score near the 0.01 prior
        'model.test_cfg.score_thr=0.0',
        env=_env(shapes_root))
    match = re.search(r'coco/bbox_mAP: (-?[0-9.]+)', log)
    assert match, log[-2000:]
    assert 0.0 <= float(match.group(1)) <= 1.0
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 8
    assert {'img_id', 'pred_instances'} <= set(preds[0])


def test_mmdet_own_train_tool_loads_plugin(tmp_path, shapes_root):
    mmdet_train = osp.join(
        osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    assert osp.isfile(mmdet_train)
    config = tmp_path / 'user_config.py'
    # What a user writes: their config, the README's snippet, nothing else.
    config.write_text(
        f"_base_ = '{SHAPES_CONFIG}'\n"
        "custom_imports = dict(imports=['mmdet_lossplug'],\n"
        "                      allow_failed_imports=False)\n"
        'model = dict(bbox_head=dict(loss_cls=dict(\n'
        "    _delete_=True, type='Poly1StarFocalLoss', use_sigmoid=True,\n"
        '    gamma=2.0, alpha=0.25, epsilon=-0.4, loss_weight=1.0)))\n')
    log = run_tool(
        mmdet_train,
        str(config),
        '--work-dir',
        str(tmp_path / 'w'),
        '--cfg-options',
        'train_cfg.max_iters=2',
        'train_cfg.val_interval=100',
        'default_hooks.logger.interval=1',
        env=dict(_env(shapes_root), PYTHONPATH=_without_checkout()))
    assert 'Poly1StarFocalLoss' in log
    assert 'Iter(train) [2/2]' in log

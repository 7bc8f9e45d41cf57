"""ScoreDistributionHook: the scores it takes from a loss's inputs (by
hand, sigmoid and softmax), both heads of a Mask R-CNN, and a real
tools/train.py run logging to the text log, PNGs and TensorBoard."""
import json
import os
import re
from types import SimpleNamespace

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.visualization import Visualizer

from mmdet_lossplug.engine import ScoreDistributionHook
from mmdet_lossplug.engine.hooks.score_distribution_hook import \
    positive_negative_scores
from ..helpers import ROOT, SHAPES_CONFIG, run_tool


def test_scores_sigmoid_by_hand():
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.5], [3.0, 3.0]])
    labels = torch.tensor([0, 2, 1])  # 2 = background
    pos, neg = positive_negative_scores(logits, labels,
                                        torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(pos, torch.sigmoid(torch.tensor([2.0])))
    torch.testing.assert_close(neg, torch.sigmoid(torch.tensor([1.5])))
    # (B, A, C) as DR loss gets it, per-class weights, no positives.
    pos, neg = positive_negative_scores(logits[None], torch.full((1, 3), 2),
                                        torch.ones(1, 3, 2))
    assert pos.numel() == 0
    torch.testing.assert_close(neg, logits.sigmoid().amax(1))


def test_scores_softmax_by_hand():
    logits = torch.tensor([[0.0, 2.0, 1.0], [1.0, 0.0, 3.0], [2.0, 0.0, 0.0]])
    probs = logits.softmax(1)
    labels = torch.tensor([1, 2, 0])  # 2 classes + background
    pos, neg = positive_negative_scores(logits, labels, use_sigmoid=False)
    torch.testing.assert_close(pos, torch.stack([probs[0, 1], probs[2, 0]]))
    torch.testing.assert_close(neg, probs[1, :2].amax()[None])
    with pytest.raises(ValueError, match='labels'):
        positive_negative_scores(logits, labels[:2])


def test_mask_rcnn_rpn_and_box_head(tmp_path):
    cfg = Config.fromfile(
        os.path.join(ROOT, 'configs', 'calibration',
                     'mask-rcnn_r50_fpn_fla53_1x_coco.py'))
    init_default_scope('mmdet')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    hub = MessageHub.get_instance('score_hook_test')
    runner = SimpleNamespace(
        model=model,
        iter=1,
        message_hub=hub,
        visualizer=Visualizer.get_instance(
            'score_hook_test',
            vis_backends=[dict(type='LocalVisBackend')],
            save_dir=str(tmp_path)))
    hook = ScoreDistributionHook(interval=2)
    hook.before_train(runner)
    packed = demo_mm_inputs(
        batch_size=1,
        image_shapes=[(3, 128, 128)],
        num_items=[3],
        num_classes=80,
        with_mask=True)
    hook.before_train_iter(runner, 1)
    model.train_step(packed,
                     OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0)))
    hook.after_train_iter(runner, 1)
    for head in ('rpn_head', 'roi_head.bbox_head'):
        pos = hub.get_scalar(f'train/{head}/pos_pt').current()
        neg = hub.get_scalar(f'train/{head}/neg_pt').current()
        assert 0 < pos < 1 and 0 < neg < 1, head
    images = sorted(
        p.name for p in (tmp_path / 'vis_data' / 'vis_image').iterdir())
    assert images == [
        'roi_head.bbox_head_scores_2.png', 'rpn_head_scores_2.png'
    ]
    hook.after_train(runner)
    with pytest.raises(ValueError, match='no classification loss'):
        ScoreDistributionHook(loss_names=['head.nope']).before_train(runner)


@pytest.mark.integration
def test_real_run_logs_scalars_images_and_tensorboard(tmp_path, shapes_root):
    event_accumulator = pytest.importorskip(
        'tensorboard.backend.event_processing.event_accumulator')
    config = tmp_path / 'monitored.py'
    config.write_text(
        f"_base_ = '{SHAPES_CONFIG}'\n"
        "custom_hooks = [dict(type='ScoreDistributionHook', interval=2)]\n"
        'visualizer = dict(vis_backends=[dict(type="LocalVisBackend"),\n'
        '    dict(type="TensorboardVisBackend")])\n')
    work_dir = tmp_path / 'work'
    log = run_tool(
        'tools/train.py',
        str(config),
        '--work-dir',
        str(work_dir),
        '--cfg-options',
        'train_cfg.max_iters=4',
        'train_cfg.val_interval=100',
        'train_dataloader.batch_size=2',
        'default_hooks.logger.interval=2',
        env=dict(os.environ, SHAPES_ROOT=shapes_root))
    logged = re.findall(
        r'Iter\(train\) \[(\d)/4\].*?bbox_head/pos_pt: ([\d.]+)\s+'
        r'bbox_head/neg_pt: ([\d.]+)', log)
    assert [int(i) for i, _, _ in logged] == [2, 4]
    for _, pos, neg in logged:
        # Near the 0.01 prior after 4 iterations: negatives are surely
        # negative, positives not yet found.
        assert 0 < float(pos) < 0.5 and 0.5 < float(neg) < 1
    vis_data = next(work_dir.glob('*/vis_data'))
    assert sorted(p.name for p in (vis_data / 'vis_image').iterdir()) == [
        'bbox_head_scores_2.png', 'bbox_head_scores_4.png'
    ]
    scalars = [json.loads(line) for line in open(vis_data / 'scalars.json')]
    assert [s['step'] for s in scalars if 'bbox_head/pos_pt' in s] == [2, 4]
    events = event_accumulator.EventAccumulator(
        str(vis_data), size_guidance={'histograms': 0})  # 0: keep all
    events.Reload()
    assert {'bbox_head/positive_scores',
            'bbox_head/negative_scores'} <= set(events.Tags()['histograms'])
    steps = [e.step for e in events.Histograms('bbox_head/negative_scores')]
    assert steps == [2, 4]

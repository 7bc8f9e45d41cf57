"""DRRetinaHead: the DR loss of all FPN levels of each image together, the
box loss exactly RetinaHead's, classifier prior 0.5."""
import math

import pytest
import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope

from mmdet_lossplug.models.dense_heads import DRRetinaHead
from mmdet_lossplug.models.dense_heads.image_level_cls_loss import \
    IMAGE_LEVEL_HEADS
from mmdet_lossplug.models.losses import DRLoss
from ..dr_oracle import dr_loss as oracle_dr_loss
from ..helpers import dense_head_batch

NUM_CLASSES = 3
HEAD = dict(
    num_classes=NUM_CLASSES,
    in_channels=8,
    feat_channels=8,
    stacked_convs=1,
    anchor_generator=dict(
        type='AnchorGenerator',
        octave_base_scale=4,
        scales_per_octave=3,
        ratios=[0.5, 1.0, 2.0],
        strides=[8, 16, 32]),
    bbox_coder=dict(
        type='DeltaXYWHBBoxCoder',
        target_means=[.0, .0, .0, .0],
        target_stds=[1.0, 1.0, 1.0, 1.0]),
    loss_bbox=dict(type='L1Loss', loss_weight=1.0),
    train_cfg=ConfigDict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'),
        allowed_border=-1,
        pos_weight=-1,
        debug=False))


def _level_targets(head, cls_scores, gts, metas):
    """Per-level labels and weights ``(B, A_l)`` from the head's targets."""
    anchors, valid = head.get_anchors([s.shape[-2:] for s in cls_scores],
                                      metas,
                                      device='cpu')
    return head.get_targets(anchors, valid, gts, metas)[:2]


def _joined_scores(cls_scores):
    """``(B, A, C)``: every level of each image, detached."""
    return torch.cat([
        s.permute(0, 2, 3, 1).reshape(2, -1, NUM_CLASSES) for s in cls_scores
    ], 1).detach()


def _heads():
    init_default_scope('mmdet')
    dr = DRRetinaHead(loss_cls=dict(type='DRLoss'), **HEAD)
    dr.init_weights()
    focal = RetinaHead(
        loss_cls=dict(type='FocalLoss', use_sigmoid=True), **HEAD)
    focal.load_state_dict(dr.state_dict())
    return dr, focal


def test_classifier_prior_is_one_half():
    dr, _ = _heads()
    assert torch.all(dr.retina_cls.bias == 0)
    assert dr.use_sigmoid_cls and dr.cls_out_channels == NUM_CLASSES


def test_head_loss_pools_every_level_of_each_image():
    dr, focal = _heads()
    feats, gts, metas = dense_head_batch()
    cls_scores, bbox_preds = dr(feats)
    losses = dr.loss_by_feat(cls_scores, bbox_preds, gts, metas)

    # The oracle on the concatenation of all levels of each image.
    labels_list, weights_list = _level_targets(dr, cls_scores, gts, metas)
    scores = _joined_scores(cls_scores)
    labels = torch.cat(labels_list, 1)
    weights = torch.cat(weights_list, 1)
    assert {0, 1, 2} <= set(labels.unique().tolist())
    want = oracle_dr_loss(
        scores.double(),
        labels,
        weights,
        lam_pos=1.0,
        lam_neg=0.1 / math.log(3.5),
        L=6.0,
        margin=0.5,
        tau=4.0)
    # float32 head against the float64 oracle
    torch.testing.assert_close(
        losses['loss_cls'].double(),
        torch.tensor(want, dtype=torch.float64),
        rtol=1e-5,
        atol=1e-6)

    per_level = torch.stack([
        DRLoss()(s.permute(0, 2, 3, 1).reshape(2, -1, NUM_CLASSES), lab, w)
        for s, lab, w in zip(cls_scores, labels_list, weights_list)
    ]).mean()
    assert abs(per_level.item() - losses['loss_cls'].item()) > 1e-3

    # The box loss is RetinaHead's own, level by level.
    focal_losses = focal.loss_by_feat(*focal(feats), gts, metas)
    for ours, theirs in zip(losses['loss_bbox'], focal_losses['loss_bbox']):
        torch.testing.assert_close(ours, theirs)
    losses['loss_cls'].backward()
    assert dr.retina_cls.weight.grad.abs().sum() > 0


def test_head_builds_from_config_and_predicts():
    init_default_scope('mmdet')
    head = MODELS.build(
        dict(type='DRRetinaHead', loss_cls=dict(type='DRLoss'), **HEAD))
    assert isinstance(head.loss_cls, DRLoss)
    feats, _, metas = dense_head_batch()
    head.test_cfg = ConfigDict(
        nms_pre=100,
        min_bbox_size=0,
        score_thr=0.2,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=10)
    metas = [dict(m, scale_factor=(1., 1.)) for m in metas]
    results = head.predict_by_feat(*head(feats), batch_img_metas=metas)
    assert len(results) == 2 and (results[0].scores >= 0.2).all()


def test_head_batch_pooling_equals_the_oracle_pooling_every_image():
    init_default_scope('mmdet')
    head = DRRetinaHead(loss_cls=dict(type='DRLoss', pool='batch'), **HEAD)
    feats, gts, metas = dense_head_batch()
    cls_scores, bbox_preds = head(feats)
    loss = head.loss_by_feat(cls_scores, bbox_preds, gts, metas)['loss_cls']
    labels, weights = (
        torch.cat(t, 1) for t in _level_targets(head, cls_scores, gts, metas))
    want = oracle_dr_loss(
        _joined_scores(cls_scores).double(),
        labels,
        weights,
        lam_pos=1.0,
        lam_neg=0.1 / math.log(3.5),
        L=6.0,
        margin=0.5,
        tau=4.0,
        pool='batch')
    torch.testing.assert_close(
        loss.double(),
        torch.tensor(want, dtype=torch.float64),
        rtol=1e-5,
        atol=1e-6)


def test_decoded_box_loss_equals_retina_head():
    """``reg_decoded_bbox``: the mixin's box loss is RetinaHead's."""
    init_default_scope('mmdet')
    cfg = dict(HEAD, reg_decoded_bbox=True, loss_bbox=dict(type='GIoULoss'))
    dr = DRRetinaHead(loss_cls=dict(type='DRLoss'), **cfg)
    focal = RetinaHead(
        loss_cls=dict(type='FocalLoss', use_sigmoid=True), **cfg)
    focal.load_state_dict(dr.state_dict())
    feats, gts, metas = dense_head_batch()
    ours = dr.loss_by_feat(*dr(feats), gts, metas)['loss_bbox']
    theirs = focal.loss_by_feat(*focal(feats), gts, metas)['loss_bbox']
    assert len(ours) == 3
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


def test_dr_loss_in_a_plain_retina_head_names_the_image_level_head():
    init_default_scope('mmdet')
    head = MODELS.build(
        dict(type='RetinaHead', loss_cls=dict(type='DRLoss'), **HEAD))
    feats, gts, metas = dense_head_batch()
    with pytest.raises(
            ValueError, match='DRRetinaHead.*ImageLevelClsLossMixin') as error:
        head.loss_by_feat(*head(feats), gts, metas)
    for name in IMAGE_LEVEL_HEADS:  # written out in dr_loss.py
        assert f"'{name}'" in str(error.value)

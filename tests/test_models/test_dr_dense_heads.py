"""DRFCOSHead and DRATSSHead (and DRRetinaHead, through the same
mechanism): the classification loss sees every location of every FPN level
of each image at once; targets, box and centerness losses are the stock
head's bit for bit; a per-location loss in their place computes what it
computes in the stock head; the classifier starts at prior 0.5; DR loss
trains a detector with each head on the shapes data; a head whose loss
calls cannot be regrouped fails at construction."""
import math

import pytest
import torch
from mmdet.models.dense_heads import ATSSHead, FCOSHead, FoveaHead, RetinaHead
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmdet_lossplug.models.dense_heads import (DRATSSHead, DRFCOSHead,
                                               DRRetinaHead,
                                               ImageLevelClsLossMixin)
from mmdet_lossplug.models.dense_heads.image_level_cls_loss import (
    ClsLossCall, regroup_per_image)
from ..dr_oracle import dr_loss as oracle_dr_loss
from ..helpers import SHAPES_CONFIG, dense_head_batch

NUM_CLASSES = 3
STRIDES = [8, 16, 32]
COMMON = dict(
    num_classes=NUM_CLASSES, in_channels=8, feat_channels=8, stacked_convs=1)
FCOS = dict(
    COMMON,
    strides=STRIDES,
    regress_ranges=((-1, 16), (16, 32), (32, 1e8)),
    norm_cfg=dict(type='GN', num_groups=4, requires_grad=True))
# FCOS as MMDetection's best FCOS configs train it: center sampling, box
# targets divided by the stride, centerness on the box branch, GIoU.
FCOS_TRICKS = dict(
    FCOS,
    center_sampling=True,
    norm_on_bbox=True,
    centerness_on_reg=True,
    loss_bbox=dict(type='GIoULoss', loss_weight=1.0))
ATSS = dict(
    COMMON,
    norm_cfg=dict(type='GN', num_groups=4, requires_grad=True),
    anchor_generator=dict(
        type='AnchorGenerator',
        ratios=[1.0],
        octave_base_scale=2,
        scales_per_octave=1,
        strides=STRIDES),
    bbox_coder=dict(
        type='DeltaXYWHBBoxCoder',
        target_means=[.0, .0, .0, .0],
        target_stds=[0.1, 0.1, 0.2, 0.2]),
    loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
    train_cfg=ConfigDict(
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False))
RETINA = dict(
    COMMON,
    anchor_generator=dict(
        type='AnchorGenerator',
        octave_base_scale=2,
        scales_per_octave=3,
        ratios=[0.5, 1.0, 2.0],
        strides=STRIDES),
    bbox_coder=dict(
        type='DeltaXYWHBBoxCoder',
        target_means=[.0, .0, .0, .0],
        target_stds=[1.0, 1.0, 1.0, 1.0]),
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
# (DR head, stock head, head config, name of the classifier conv)
HEADS = {
    'fcos': (DRFCOSHead, FCOSHead, FCOS, 'conv_cls'),
    'fcos-tricks': (DRFCOSHead, FCOSHead, FCOS_TRICKS, 'conv_cls'),
    'atss': (DRATSSHead, ATSSHead, ATSS, 'atss_cls'),
    'retina': (DRRetinaHead, RetinaHead, RETINA, 'retina_cls'),
}
FOCAL = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25)
DR_DEFAULTS = dict(
    lam_pos=1.0, lam_neg=0.1 / math.log(3.5), L=6.0, margin=0.5, tau=4.0)


def _twin_heads(dr_type, stock_type, cfg, loss_cls):
    """The DR head with ``loss_cls`` and the stock head with focal loss,
    with the same weights."""
    init_default_scope('mmdet')
    torch.manual_seed(0)
    ours = dr_type(loss_cls=loss_cls, **cfg)
    ours.init_weights()
    stock = stock_type(loss_cls=FOCAL, **cfg)
    stock.load_state_dict(ours.state_dict())
    return ours, stock


def _losses(head):
    feats, gts, metas = dense_head_batch(STRIDES)
    return head.loss_by_feat(*head(feats), gts, metas)


def _per_image_targets(head, cls_scores, gts, metas):
    """``(B, A)`` labels and weights of every level of each image, from the
    stock head's own target code."""
    if isinstance(head, FCOSHead):
        # FCOS computes each image's targets over all levels at once;
        # every location has weight 1.
        points = head.prior_generator.grid_priors(
            [s.shape[-2:] for s in cls_scores], device='cpu')
        ranges = torch.cat([
            p.new_tensor(r)[None].expand_as(p)
            for p, r in zip(points, head.regress_ranges)
        ])
        labels = torch.stack([
            head._get_targets_single(
                gt,
                points=torch.cat(points),
                regress_ranges=ranges,
                num_points_per_lvl=[len(p) for p in points])[0] for gt in gts
        ])
        return labels, torch.ones_like(labels, dtype=torch.float)
    anchors, valid = head.get_anchors([s.shape[-2:] for s in cls_scores],
                                      metas,
                                      device='cpu')
    targets = head.get_targets(anchors, valid, gts, metas)
    # (labels, weights) per level, (B, A_l) each; ATSS returns its anchors
    # first.
    labels, weights = targets[1:3] if isinstance(head,
                                                 ATSSHead) else targets[:2]
    return torch.cat(labels, 1), torch.cat(weights, 1)


def _per_image_scores(cls_scores):
    """``(B, A, C)``: each image's scores, level after level, detached."""
    return torch.cat([
        torch.stack(
            [img.permute(1, 2, 0).reshape(-1, NUM_CLASSES) for img in level])
        for level in cls_scores
    ], 1).detach()


@pytest.mark.parametrize('name', HEADS)
def test_box_and_centerness_losses_are_the_stock_heads(name):
    dr_type, stock_type, cfg, _ = HEADS[name]
    ours, stock = _twin_heads(dr_type, stock_type, cfg, dict(type='DRLoss'))
    got, want = _losses(ours), _losses(stock)
    assert got.keys() == want.keys()
    for key in set(want) - {'loss_cls'}:
        pairs = list(zip(got[key], want[key])) if isinstance(
            want[key], list) else [(got[key], want[key])]
        if isinstance(want[key], list):  # ATSS, RetinaNet: one per level
            assert len(pairs) == len(want[key]) == len(STRIDES)
        for a, b in pairs:
            assert torch.equal(a, b), key  # bit for bit
        assert sum(b for _, b in pairs) > 0, key  # the batch has positives


@pytest.mark.parametrize('name', HEADS)
def test_a_per_location_loss_computes_the_stock_heads_loss(name):
    """Regrouping keeps each score with its label and weight, and a
    per-location loss keeps the head's avg_factor."""
    dr_type, stock_type, cfg, _ = HEADS[name]
    ours, stock = _twin_heads(dr_type, stock_type, cfg, FOCAL)
    got, want = _losses(ours), _losses(stock)
    want_cls = want['loss_cls']
    if isinstance(want_cls, list):  # a loss per level: their sum is logged
        want_cls = sum(want_cls)
    # the same terms, summed in another order
    torch.testing.assert_close(got['loss_cls'], want_cls)
    assert want_cls > 0


@pytest.mark.parametrize('name', HEADS)
def test_dr_loss_pools_every_level_of_each_image(name):
    dr_type, stock_type, cfg, cls_layer = HEADS[name]
    ours, _ = _twin_heads(dr_type, stock_type, cfg, dict(type='DRLoss'))
    feats, gts, metas = dense_head_batch(STRIDES)
    outs = ours(feats)
    loss = ours.loss_by_feat(*outs, gts, metas)['loss_cls']

    labels, weights = _per_image_targets(ours, outs[0], gts, metas)
    assert {0, 1, 2} <= set(labels.unique().tolist())
    want = oracle_dr_loss(
        _per_image_scores(outs[0]).double(), labels, weights, **DR_DEFAULTS)
    # float32 head against the float64 oracle
    torch.testing.assert_close(
        loss.double(),
        torch.tensor(want, dtype=torch.float64),
        rtol=1e-5,
        atol=1e-6)
    loss.backward()
    assert getattr(ours, cls_layer).weight.grad.abs().sum() > 0


@pytest.mark.parametrize('name', HEADS)
def test_classifier_starts_at_prior_one_half(name):
    dr_type, stock_type, cfg, cls_layer = HEADS[name]
    ours, stock = _twin_heads(dr_type, stock_type, cfg, dict(type='DRLoss'))
    assert torch.all(getattr(ours, cls_layer).bias == 0)  # sigmoid(0)
    assert ours.use_sigmoid_cls and ours.cls_out_channels == NUM_CLASSES
    fresh = stock_type(loss_cls=FOCAL, **cfg)
    fresh.init_weights()
    stock_prior = getattr(fresh, cls_layer).bias.sigmoid()
    torch.testing.assert_close(stock_prior, torch.full_like(stock_prior, 0.01))


class DRFoveaHead(ImageLevelClsLossMixin, FoveaHead):
    """FoveaBox flattens its targets its own way (not a regroupable head)."""


class RetinaHeadOwnLevelLoss(ImageLevelClsLossMixin, RetinaHead):
    """Keeps AnchorHead.loss_by_feat but calls loss_cls its own way."""

    def loss_by_feat_single(self, *args, **kwargs):
        return super().loss_by_feat_single(*args, **kwargs)


@pytest.mark.parametrize('head_type', [DRFoveaHead, RetinaHeadOwnLevelLoss])
def test_a_head_that_cannot_be_regrouped_fails_at_construction(head_type):
    init_default_scope('mmdet')
    with pytest.raises(
            TypeError,
            match=f'{head_type.__name__} cannot.*'
            'DRRetinaHead, DRATSSHead, DRFCOSHead'):
        head_type(loss_cls=dict(type='DRLoss'), **COMMON)


def test_calls_that_miss_locations_are_an_error():
    """Rows that do not cover every location once cannot be regrouped."""
    cls_scores = [torch.zeros(2, NUM_CLASSES, 4, 4)]  # 2 x 16 locations
    call = ClsLossCall(
        torch.zeros(30, NUM_CLASSES), torch.zeros(30, dtype=torch.long), None,
        None)
    with pytest.raises(RuntimeError, match='30 rows.*32 locations'):
        regroup_per_image([call], cls_scores, NUM_CLASSES)


# Detectors small enough for a CPU step: the shapes config's ResNet-18/4
# and FPN (64 channels, strides 8-128) with each DR head.
SHAPES_STRIDES = [8, 16, 32, 64, 128]
SHAPES_HEADS = {
    'FCOS':
    dict(type='DRFCOSHead', strides=SHAPES_STRIDES),
    'ATSS':
    dict(
        type='DRATSSHead',
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=4,
            scales_per_octave=1,
            strides=SHAPES_STRIDES),
        bbox_coder=ATSS['bbox_coder'],
        loss_bbox=ATSS['loss_bbox']),
}
SHAPES_CLASSIFIERS = dict(FCOS='conv_cls', ATSS='atss_cls')


@pytest.mark.integration
@pytest.mark.parametrize('detector', SHAPES_HEADS)
def test_dr_loss_trains_a_detector_on_the_shapes_data(detector, shapes_root):
    init_default_scope('mmdet')
    cfg = Config.fromfile(SHAPES_CONFIG)
    model = cfg.model
    model.type = detector
    model.bbox_head = dict(
        SHAPES_HEADS[detector],
        num_classes=NUM_CLASSES,
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        loss_cls=dict(type='DRLoss'))
    model.train_cfg = ATSS['train_cfg'] if detector == 'ATSS' else None
    torch.manual_seed(0)
    model = MODELS.build(model)
    model.init_weights()
    dataloader = cfg.train_dataloader
    dataloader.batch_size = 2
    dataloader.dataset.data_root = shapes_root
    batch = next(iter(Runner.build_dataloader(dataloader, seed=0)))
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    dr_loss = model.bbox_head.loss_cls
    classifier = getattr(model.bbox_head, SHAPES_CLASSIFIERS[detector])
    before = classifier.weight.detach().clone()
    log_vars = model.train_step(batch, optim_wrapper)

    assert model.bbox_head.loss_cls is dr_loss  # the recorder is gone
    assert set(log_vars) >= {'loss_cls', 'loss_bbox', 'loss_centerness'}
    for key, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)), key
    assert log_vars['loss_bbox'] > 0  # the shapes gave positives
    # Every score starts near 0.5, so E- - E+ is near 0 and the loss near
    # tau * ln(1 + e^(L * margin)) / L = 2.03 with the DR loss paper's
    # defaults (tau 4, L 6, margin 0.5).
    at_prior = 4.0 * math.log1p(math.exp(6.0 * 0.5)) / 6.0
    assert abs(log_vars['loss_cls'] - at_prior) < 0.1 * at_prior
    assert not torch.equal(before, classifier.weight)  # the step trained it

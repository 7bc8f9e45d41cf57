# ATSS on the ImageNet MobileNetV2 and FPN of
# retinanet_mobilenetv2_fpn_neon-trees.py, with its data, scale and
# schedule: adaptive training-sample selection, for DR loss in DRATSSHead on
# real tiles (tests/test_tools/test_neon_trees_training.py).
#   NEON_TREES_ROOT=data/neon_trees python tools/train.py THIS_CONFIG
_base_ = ['./retinanet_mobilenetv2_fpn_neon-trees.py']

model = dict(
    type='ATSS',
    bbox_head=dict(
        _delete_=True,
        type='ATSSHead',
        num_classes=1,
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        # One square anchor per position, 8 strides wide, as mmdet's ATSS:
        # 64-256 px there, 12-48 px at this data's strides 8-32 with scale
        # 1.5 (crowns are 5-68 px).
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=1.5,
            scales_per_octave=1,
            strides=[8, 16, 32]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(
        _delete_=True,
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False))

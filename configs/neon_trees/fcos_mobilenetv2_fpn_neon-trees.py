# FCOS (anchor-free) on the ImageNet MobileNetV2 and FPN of
# retinanet_mobilenetv2_fpn_neon-trees.py, with its data, scale and
# schedule: the model of the run command's anchor-free comparison (focal
# against DR loss in DRFCOSHead).
#   NEON_TREES_ROOT=data/neon_trees python tools/train.py THIS_CONFIG
_base_ = ['./retinanet_mobilenetv2_fpn_neon-trees.py']

model = dict(
    type='FCOS',
    bbox_head=dict(
        _delete_=True,
        type='FCOSHead',
        num_classes=1,
        in_channels=64,
        feat_channels=64,
        stacked_convs=2,
        strides=[8, 16, 32],
        # Crowns are 5-68 px at this scale: each level takes boxes up to
        # four times its stride (mmdet's COCO ranges start at 64 px).
        regress_ranges=((-1, 32), (32, 64), (64, 1e8)),
        loss_cls=dict(
            type='FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            loss_weight=1.0),
        loss_bbox=dict(type='IoULoss', loss_weight=1.0),
        loss_centerness=dict(
            type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    # FCOS assigns points by location and size range, without an IoU
    # assigner.
    train_cfg=None,
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))

# RetinaNet on torchvision's ImageNet MobileNetV2, small enough to train in
# minutes on two CPU cores, on the NEON tree-crown tiles of
# tools/dataset_converters/neon_trees_to_coco.py. The weights are converted
# by tools/model_converters/torchvision_mobilenet_v2_to_mmdet.py (`make
# install` writes them into data/pretrained; PRETRAINED_ROOT moves it).
#   NEON_TREES_ROOT=data/neon_trees python tools/train.py THIS_CONFIG
# NEON_TREES_SPLIT picks the split: in_site (default: the right 30 % of
# every image validates, the left 70 % trains) or cross_site (one YELL
# image trains, the three others validate).
_base_ = ['../shapes/retinanet_r18-tiny_fpn_shapes.py']

classes = ('Tree', )
split = '{{$NEON_TREES_SPLIT:in_site}}'
data_root = '{{$NEON_TREES_ROOT:data/neon_trees}}' + dict(
    in_site='/in_site/', cross_site='/')[split]
pretrained = ('{{$PRETRAINED_ROOT:data/pretrained}}' +
              '/mobilenetv2_torchvision-imagenet_mmdet.pth')
# Every tile at one scale (in-site tiles beside a line are narrower than
# 400 px, and fitting each into a fixed size would enlarge them): 400 px
# tiles become 256 px, crowns of 8-107 px become 5-68 px.
scale = 0.64

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        # layer2-layer7 outputs at strides 4, 8, 16 and 32 (24, 32, 96 and
        # 320 channels); the FPN starts at stride 8, as the anchors do.
        out_indices=(1, 2, 4, 6),
        # The stem, layer1 and layer2 (stride 4) stay as ImageNet trained
        # them: as accurate as training layer2 too, a quarter less CPU time;
        # freezing up to layer4 lost a third of the AP50 (probes in
        # docs/neon_trees/probes.md). So do the BN statistics: batches of 4
        # tiles are too few to re-estimate them.
        frozen_stages=2,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(
        in_channels=[24, 32, 96, 320],
        out_channels=64,
        start_level=1,
        num_outs=3),
    bbox_head=dict(
        num_classes=len(classes),
        # Anchors of 12-19 px at stride 8 up to 48-76 px at stride 32.
        anchor_generator=dict(octave_base_scale=1.5, strides=[8, 16, 32])),
    train_cfg=dict(assigner=dict(pos_iou_thr=0.5, neg_iou_thr=0.4)),
    test_cfg=dict(max_per_img=100))

# Aerial views flip both ways.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale_factor=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    # Never ends, so mmengine's iteration loop never sleeps 2 s at an
    # epoch's end.
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(
        type='CocoMetric',
        ann_file=data_root + 'annotations/instances_val.json',
        metric='bbox',
        format_only=False),
    dict(type='DetectionCalibrationMetric', iou_thrs=(0.5, 0.75), n_bins=10)
]
test_evaluator = val_evaluator

max_iters = 800
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# AdamW at 5e-4: the from-scratch rate (4e-3) diverges from these weights.
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', by_epoch=False, milestones=[600], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=100), checkpoint=dict(interval=max_iters))

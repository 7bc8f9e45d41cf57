# RetinaNet small enough to train on two CPU cores in minutes, on 400 px
# tiles of the NEON tree-crown images shipped with deepforest
# (tools/dataset_converters/neon_trees_to_coco.py): the shapes config's
# model, fitted to one class of 8-107 px crowns and trained from scratch.
# The model of the README's run command (tools/analysis/compare_losses.py);
# no pretrained weights.
#   NEON_TREES_ROOT=path/to/tiles python tools/train.py THIS_CONFIG
_base_ = ['../shapes/retinanet_r18-tiny_fpn_shapes.py']

classes = ('Tree', )
data_root = '{{$NEON_TREES_ROOT:data/neon_trees/}}'
image_size = 256  # tiles are 400 px: crowns of 8-107 px become 5-68 px

model = dict(
    backbone=dict(
        # From scratch: train every stage and let BN learn its statistics
        # (the base config freezes the stem and BN for pretrained weights).
        frozen_stages=-1,
        norm_eval=False),
    # Three levels (strides 8, 16, 32) are enough for crowns under 90 px.
    neck=dict(num_outs=3),
    bbox_head=dict(
        num_classes=len(classes),
        # Anchors of 12-19 px at stride 8 up to 48-76 px at stride 32.
        anchor_generator=dict(octave_base_scale=1.5, strides=[8, 16, 32])),
    train_cfg=dict(assigner=dict(pos_iou_thr=0.5, neg_iou_thr=0.4)),
    test_cfg=dict(max_per_img=100))

# The shapes pipelines at this image size; aerial views flip both ways.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    # Never ends, so mmengine's iteration loop never reaches its 2 s sleep
    # at an epoch's end: 90 tiles are 23 iterations, and those sleeps were
    # about half of the training time.
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
        ann_file=data_root + '/annotations/instances_val.json',
        metric='bbox',
        format_only=False),
    dict(type='DetectionCalibrationMetric', iou_thrs=(0.5, 0.75), n_bins=10)
]
test_evaluator = val_evaluator

# 800 iterations (36 passes over the training tiles): where focal's
# validation AP stops rising (probes at 500-2000 iterations, in
# docs/neon_trees).
max_iters = 800
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=4e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', by_epoch=False, milestones=[600], gamma=0.1)
]
default_hooks = dict(
    logger=dict(interval=100), checkpoint=dict(interval=max_iters))

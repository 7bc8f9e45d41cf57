# DR Table 7 baseline: RetinaNet R50-FPN with focal loss on PASCAL VOC 2007,
# trainval -> test, batch 16 (8 x 2), lr 0.008 decayed x0.1 at 6,250 of
# 8,750 iterations (focal: AP 39.5 / AP50 67.2 / AP75 40.8, COCO-style).
_base_ = 'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py'
custom_imports = dict(imports=['mmdet_lossplug'], allow_failed_imports=False)

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root={{_base_.data_root}},
        ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
        pipeline={{_base_.train_pipeline}},
        backend_args={{_base_.backend_args}}))

max_iters = 8750
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=max_iters)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[6250],
        gamma=0.1)
]
optim_wrapper = dict(optimizer=dict(lr=0.008))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)

# VOC07 mAP (11 points at IoU 0.5) and the paper's COCO-style AP: the mean
# over IoU 0.50:0.95 of area-under-curve AP (also gives AP50 and AP75).
val_evaluator = [
    dict(type='VOCMetric', metric='mAP', eval_mode='11points'),
    dict(
        type='VOCMetric',
        metric='mAP',
        eval_mode='area',
        iou_thrs=[round(0.5 + 0.05 * i, 2) for i in range(10)],
        prefix='coco_style')
]
test_evaluator = val_evaluator

# DR Table 4: RetinaNet ResNeXt-101-32x8d-FPN, 1.5x (18 epochs), scale
# jitter 640-800 (43.1 AP test-dev). The 32x8d weights are Detectron2's
# (Caffe2 normalisation), as in MMDetection's Mask R-CNN X101-32x8d. Tested
# with score_thr 0.2 (the official default; only R101 2x uses 0.1).
_base_ = './retinanet_r101_fpn_dr_ms-640-800-2x_coco.py'
model = dict(
    data_preprocessor=dict(
        mean=[103.530, 116.280, 123.675],
        std=[57.375, 57.120, 58.395],
        bgr_to_rgb=False),
    backbone=dict(
        type='ResNeXt',
        depth=101,
        groups=32,
        base_width=8,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        style='pytorch',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='open-mmlab://detectron2/resnext101_32x8d')),
    test_cfg=dict(score_thr=0.2))
# 1.5x: 18 epochs, decays at 12 and 16 (a list replaces its base whole).
max_epochs = 18
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[12, 16],
        gamma=0.1)
]

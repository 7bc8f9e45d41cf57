# Baseline for the RetinaNet calibration row: MMDetection's RetinaNet
# R50-FPN 1x with focal loss (gamma 2, alpha 0.25), evaluated with COCO AP
# and D-ECE.
_base_ = '../polyloss/retinanet_r50_fpn_focal_1x_coco.py'

val_evaluator = [
    dict(
        type='CocoMetric',
        ann_file='data/coco/annotations/instances_val2017.json',
        metric='bbox',
        format_only=False),
    dict(type='DetectionCalibrationMetric', iou_thrs=(0.5, 0.75), n_bins=10)
]
test_evaluator = val_evaluator

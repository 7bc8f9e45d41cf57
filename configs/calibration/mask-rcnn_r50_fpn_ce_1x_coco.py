# Baseline for the calibration rows: MMDetection's Mask R-CNN R50-FPN 1x,
# cross-entropy in the box classifier, evaluated with COCO AP and D-ECE.
# The FLA-53 / FLS-532 configs inherit this file and change only the box
# classifier's loss.
_base_ = '../polyloss/mask-rcnn_r50_fpn_ce_1x_coco.py'

val_evaluator = [
    dict(
        type='CocoMetric',
        ann_file='data/coco/annotations/instances_val2017.json',
        metric=['bbox', 'segm'],
        format_only=False),
    # Box confidences against box matches, from the loaded annotations.
    dict(type='DetectionCalibrationMetric', iou_thrs=(0.5, 0.75), n_bins=10)
]
test_evaluator = val_evaluator

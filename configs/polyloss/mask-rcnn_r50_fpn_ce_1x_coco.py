# Baseline: MMDetection's Mask R-CNN R50-FPN 1x, cross-entropy in the box
# classifier (PolyLoss Table 5, L_CE row).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdet_lossplug'], allow_failed_imports=False)

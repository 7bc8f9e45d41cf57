# Baseline: MMDetection's RetinaNet R50-FPN 1x, focal loss (gamma 2, alpha
# 0.25). Other rows of PolyLoss Table 9 inherit from this file.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdet_lossplug'], allow_failed_imports=False)

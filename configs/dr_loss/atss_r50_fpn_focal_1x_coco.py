# Baseline: MMDetection's ATSS R50-FPN 1x, focal loss (gamma 2, alpha
# 0.25; MMDetection zoo: 39.4 AP). The DR paper has no ATSS row: this and
# the DR config beside it are a comparison of our own.
_base_ = 'mmdet::atss/atss_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdet_lossplug'], allow_failed_imports=False)

# Baseline: MMDetection's FCOS R50-caffe-FPN, GN head, 1x, focal loss
# (gamma 2, alpha 0.25; MMDetection zoo: 36.6 AP). The DR paper has no FCOS
# row: this and the DR config beside it are a comparison of our own.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['mmdet_lossplug'], allow_failed_imports=False)

# DR Table 2: quadratic smoothing (Eq. 7) with rho = 0.2 (36.9 AP minival).
_base_ = './retinanet_r50_fpn_dr_1x_coco.py'
model = dict(bbox_head=dict(loss_cls=dict(smooth='quadratic', rho=0.2)))

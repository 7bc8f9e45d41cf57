# DR Table 2: logistic loss with L = 8 (37.1 AP minival).
_base_ = './retinanet_r50_fpn_dr_1x_coco.py'
model = dict(bbox_head=dict(loss_cls=dict(L=8.0)))

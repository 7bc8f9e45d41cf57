# DR Table 2: logistic loss with L = 4 (37.2 AP minival).
_base_ = './retinanet_r50_fpn_dr_1x_coco.py'
model = dict(bbox_head=dict(loss_cls=dict(L=4.0)))

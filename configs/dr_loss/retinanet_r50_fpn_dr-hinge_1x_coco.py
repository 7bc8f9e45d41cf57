# DR Table 2: the unsmoothed hinge loss (35.8 AP minival).
_base_ = './retinanet_r50_fpn_dr_1x_coco.py'
model = dict(bbox_head=dict(loss_cls=dict(smooth='hinge')))

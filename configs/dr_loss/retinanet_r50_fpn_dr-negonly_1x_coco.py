# DR Table 3: NegOnly, E- ranked against every positive (37.0 AP minival).
_base_ = './retinanet_r50_fpn_dr_1x_coco.py'
model = dict(bbox_head=dict(loss_cls=dict(pair='neg_only')))

# DR Table 1: h+ = e, h- = 20 (36.6 AP minival);
# lambda+ = 1/ln(h+), lambda- = 0.1/ln(h-).
_base_ = './retinanet_r50_fpn_dr_1x_coco.py'
model = dict(
    bbox_head=dict(loss_cls=dict(lam_pos=1.0, lam_neg=0.033380820069533405)))

# DR Table 1: h+ = 5.5, h- = 3.5 (36.7 AP minival);
# lambda+ = 1/ln(h+), lambda- = 0.1/ln(h-).
_base_ = './retinanet_r50_fpn_dr_1x_coco.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(lam_pos=0.5865969315659691,
                      lam_neg=0.07982356001479281)))

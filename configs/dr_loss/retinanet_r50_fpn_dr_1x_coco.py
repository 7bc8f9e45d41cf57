# DR loss, the paper's defaults (DR Table 1-3 bold row: 37.4 AP minival):
# lambda+ = 1/ln(e), lambda- = 0.1/ln(3.5), L = 6, margin 0.5, tau = 4,
# classifier prior 0.5, one distribution per image over every FPN level.
# Against the focal baseline only bbox_head.type, loss_cls and score_thr
# change.
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdet_lossplug'], allow_failed_imports=False)

model = dict(
    bbox_head=dict(
        type='DRRetinaHead',
        loss_cls=dict(
            _delete_=True,
            type='DRLoss',
            lam_pos=1.0,
            lam_neg=0.1 / 1.252762968495368,  # 0.1 / ln(3.5)
            L=6.0,
            margin=0.5,
            loss_weight=4.0)),
    test_cfg=dict(score_thr=0.2))  # the official configs' threshold

# DR loss in FCOS (no paper number: the DR paper trains RetinaNet only).
# The paper's defaults (lambda+ = 1/ln(e), lambda- = 0.1/ln(3.5), L = 6,
# margin 0.5, tau = 4) over every point of every FPN level of each image,
# classifier prior 0.5 (DRFCOSHead). Against the focal baseline only
# bbox_head.type, loss_cls and score_thr change; FCOS's targets, IoU box
# loss and centerness branch are its own. score_thr: see README.md.
_base_ = './fcos_r50-caffe_fpn_gn-head_focal_1x_coco.py'

model = dict(
    bbox_head=dict(
        type='DRFCOSHead',
        loss_cls=dict(
            _delete_=True,
            type='DRLoss',
            lam_pos=1.0,
            lam_neg=0.1 / 1.252762968495368,  # 0.1 / ln(3.5)
            L=6.0,
            margin=0.5,
            loss_weight=4.0)),
    test_cfg=dict(score_thr=0.2))

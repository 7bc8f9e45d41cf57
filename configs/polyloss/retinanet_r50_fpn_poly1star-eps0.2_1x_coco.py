# Poly-1* focal (PolyLoss Table 6 form): FL - (1-pt)^3 + (0.2)(1-pt)^4,
# alpha-balanced like RetinaNet's focal loss.
_base_ = './retinanet_r50_fpn_focal_1x_coco.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True,
            type='Poly1StarFocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,
            epsilon=0.2,
            loss_weight=1.0)))

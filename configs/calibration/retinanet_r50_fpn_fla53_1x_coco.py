# Sigmoid FLA-53 (Mukhoti et al. 2020) for RetinaNet: each (anchor, class)
# term gets gamma 5 where its pt is below 0.2, else 3; alpha 0.25 as in
# RetinaNet's focal loss.
_base_ = './retinanet_r50_fpn_focal_1x_coco.py'
model = dict(
    bbox_head=dict(
        loss_cls=dict(
            _delete_=True,
            type='AdaptiveFocalLoss',
            use_sigmoid=True,
            gammas=(5.0, 3.0),
            thresholds=(0.2, ),
            alpha=0.25,
            loss_weight=1.0)))

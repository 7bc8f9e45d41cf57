# Sample-dependent focal loss FLA-53 (Mukhoti et al. 2020) in the box
# classifier: softmax over 80 + 1 classes, gamma 5 where the true class's
# probability is below 0.2, else 3.
_base_ = './mask-rcnn_r50_fpn_ce_1x_coco.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(
                _delete_=True,
                type='AdaptiveFocalLoss',
                use_sigmoid=False,
                gammas=(5.0, 3.0),
                thresholds=(0.2, ),
                loss_weight=1.0))))

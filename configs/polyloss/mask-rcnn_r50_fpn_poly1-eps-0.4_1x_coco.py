# Poly-1 cross-entropy, epsilon = -0.4, in the box classifier only (softmax
# over 80 + 1 classes); every other loss as in the CE baseline.
# PolyLoss Table 5 / Fig. 6a.
_base_ = './mask-rcnn_r50_fpn_ce_1x_coco.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            loss_cls=dict(
                _delete_=True,
                type='Poly1CrossEntropyLoss',
                use_sigmoid=False,
                epsilon=-0.4,
                loss_weight=1.0))))

# PolyLoss Table 9 focal row at (gamma, alpha) = (2.5, 0.25).
_base_ = './retinanet_r50_fpn_focal_1x_coco.py'
model = dict(bbox_head=dict(loss_cls=dict(gamma=2.5, alpha=0.25)))

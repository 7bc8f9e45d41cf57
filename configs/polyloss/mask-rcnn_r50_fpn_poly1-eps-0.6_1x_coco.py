# Poly-1 cross-entropy with epsilon = -0.6 in the box classifier
# (PolyLoss Fig. 6a); otherwise as the epsilon = -1 config.
_base_ = './mask-rcnn_r50_fpn_poly1-eps-1.0_1x_coco.py'
model = dict(roi_head=dict(bbox_head=dict(loss_cls=dict(epsilon=-0.6))))

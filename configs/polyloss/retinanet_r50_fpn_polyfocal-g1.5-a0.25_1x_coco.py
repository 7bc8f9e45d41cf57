# PolyLoss Table 9 Poly-1 focal row at (gamma, alpha) = (1.5, 0.25); otherwise
# as the (2.0, 0.25) config (epsilon -1: the paper tunes it per column
# without reporting it).
_base_ = './retinanet_r50_fpn_polyfocal-g2.0-a0.25_1x_coco.py'
model = dict(bbox_head=dict(loss_cls=dict(gamma=1.5, alpha=0.25)))

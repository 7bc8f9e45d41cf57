# The official implementation's pooling: one distribution over every image
# and level on a GPU (its result depends on images per GPU: 2 here, as in
# the paper's 8 x 2 setup).
_base_ = './retinanet_r50_fpn_dr_1x_coco.py'
model = dict(bbox_head=dict(loss_cls=dict(pool='batch')))

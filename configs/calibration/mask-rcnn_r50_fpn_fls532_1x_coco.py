# Scheduled focal loss FLS-532 (Mukhoti et al. 2020) in the box classifier:
# the FLA-53 config's softmax focal loss with a single gamma band, which the
# hook sets to 5 for epochs 1-3, 3 for epochs 4-9 and 2 for epochs 10-12
# (the paper's 100/250/350-epoch milestones scaled to the 1x schedule).
_base_ = './mask-rcnn_r50_fpn_fla53_1x_coco.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(loss_cls=dict(gammas=(5.0, ), thresholds=()))))
custom_hooks = [dict(type='FocalGammaScheduleHook', preset='FLS-532')]

# DR Table 7: DR loss on PASCAL VOC 2007 (AP 41.2 / AP50 68.6 / AP75 42.6,
# COCO-style), schedule as the focal baseline.
_base_ = './retinanet_r50_fpn_focal_voc07.py'
model = dict(
    bbox_head=dict(
        type='DRRetinaHead',
        loss_cls=dict(
            _delete_=True,
            type='DRLoss',
            lam_pos=1.0,
            lam_neg=0.1 / 1.252762968495368,  # 0.1 / ln(3.5)
            L=6.0,
            margin=0.5,
            loss_weight=4.0)),
    test_cfg=dict(score_thr=0.2))

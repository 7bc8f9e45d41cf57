from mmdet.models.dense_heads import ATSSHead
from mmdet.registry import MODELS

from .classifier_prior import classifier_prior_init_cfg
from .image_level_cls_loss import ImageLevelClsLossMixin


@MODELS.register_module()
class DRATSSHead(ImageLevelClsLossMixin, ATSSHead):
    """ATSSHead whose classification loss sees every anchor of every FPN
    level of each image at once (DR loss), with the classifier bias
    initialised for prior probability 0.5 instead of 0.01.

    ATSS's adaptive assignment, the box and centerness losses and their
    normalisation are ATSSHead's. A focal ATSS config becomes a DR one by
    changing ``bbox_head.type``, ``bbox_head.loss_cls`` and
    ``test_cfg.score_thr``.
    """

    def __init__(self,
                 *args,
                 init_cfg=classifier_prior_init_cfg('atss_cls'),
                 **kwargs) -> None:
        super().__init__(*args, init_cfg=init_cfg, **kwargs)

from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS

from .classifier_prior import classifier_prior_init_cfg
from .image_level_cls_loss import ImageLevelClsLossMixin


@MODELS.register_module()
class DRRetinaHead(ImageLevelClsLossMixin, RetinaHead):
    """RetinaHead whose classification loss sees all FPN levels of each
    image at once (DR loss), with the classifier bias initialised for prior
    probability 0.5 (bias 0), as the DR paper does, instead of 0.01.

    A focal-loss RetinaNet config becomes a DR one by changing
    ``bbox_head.type``, ``bbox_head.loss_cls`` and ``test_cfg.score_thr``.
    """

    def __init__(self,
                 *args,
                 init_cfg=classifier_prior_init_cfg('retina_cls'),
                 **kwargs) -> None:
        super().__init__(*args, init_cfg=init_cfg, **kwargs)

from mmdet.models.dense_heads import RetinaHead
from mmdet.registry import MODELS

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
                 init_cfg=dict(
                     type='Normal',
                     layer='Conv2d',
                     std=0.01,
                     override=dict(
                         type='Normal',
                         name='retina_cls',
                         std=0.01,
                         bias_prob=0.5)),
                 **kwargs) -> None:
        super().__init__(*args, init_cfg=init_cfg, **kwargs)

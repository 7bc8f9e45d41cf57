from .dr_retina_head import DRRetinaHead
from .image_level_cls_loss import ImageLevelClsLossMixin

__all__ = ['DRRetinaHead', 'ImageLevelClsLossMixin']

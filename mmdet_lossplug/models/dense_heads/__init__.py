from .dr_atss_head import DRATSSHead
from .dr_fcos_head import DRFCOSHead
from .dr_retina_head import DRRetinaHead
from .image_level_cls_loss import ImageLevelClsLossMixin

__all__ = [
    'DRATSSHead', 'DRFCOSHead', 'DRRetinaHead', 'ImageLevelClsLossMixin'
]

from .cpu_ddp import DeviceAwareDistributedDataParallel
from .hooks import FocalGammaScheduleHook, set_focal_gamma

__all__ = [
    'DeviceAwareDistributedDataParallel', 'FocalGammaScheduleHook',
    'set_focal_gamma'
]

from .cpu_ddp import DeviceAwareDistributedDataParallel
from .hooks import (DetectionScoreCalibrationHook, DetectionTemperatureHook,
                    FocalGammaScheduleHook, ScoreDistributionHook,
                    set_focal_gamma)

__all__ = [
    'DeviceAwareDistributedDataParallel', 'FocalGammaScheduleHook',
    'set_focal_gamma', 'ScoreDistributionHook', 'DetectionTemperatureHook',
    'DetectionScoreCalibrationHook'
]

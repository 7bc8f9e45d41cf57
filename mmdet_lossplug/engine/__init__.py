from .cpu_ddp import DeviceAwareDistributedDataParallel
from .hooks import (DetectionScoreCalibrationHook, FocalGammaScheduleHook,
                    ScoreDistributionHook, set_focal_gamma)
from .safe_checkpoint import (SafeCheckpointLoadingHook,
                              use_safe_checkpoint_loading)

__all__ = [
    'DeviceAwareDistributedDataParallel', 'FocalGammaScheduleHook',
    'set_focal_gamma', 'ScoreDistributionHook',
    'DetectionScoreCalibrationHook', 'SafeCheckpointLoadingHook',
    'use_safe_checkpoint_loading'
]

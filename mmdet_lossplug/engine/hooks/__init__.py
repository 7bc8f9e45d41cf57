from .detection_score_calibration_hook import DetectionScoreCalibrationHook
from .focal_gamma_schedule_hook import (PRESETS, FocalGammaScheduleHook,
                                        set_focal_gamma)
from .score_distribution_hook import ScoreDistributionHook

__all__ = [
    'FocalGammaScheduleHook', 'set_focal_gamma', 'PRESETS',
    'ScoreDistributionHook', 'DetectionScoreCalibrationHook'
]

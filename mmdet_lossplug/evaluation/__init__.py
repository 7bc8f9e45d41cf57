from .calibration import (adaptive_ece, brier, classwise_ece, ece, mce, nll,
                          reliability_bins)
from .coco_matching import CocoVerdicts, judge_detections
from .detection_calibration_metric import DetectionCalibrationMetric
from .localisation_aware import laece, lrp
from .reliability_diagram import plot_reliability_diagram
from .temperature_scaling import (fit_temperature_grid, fit_temperature_nll,
                                  temper_scores)

__all__ = [
    'ece', 'adaptive_ece', 'mce', 'classwise_ece', 'nll', 'brier',
    'reliability_bins', 'CocoVerdicts', 'judge_detections',
    'DetectionCalibrationMetric', 'laece', 'lrp', 'plot_reliability_diagram',
    'temper_scores', 'fit_temperature_grid', 'fit_temperature_nll'
]

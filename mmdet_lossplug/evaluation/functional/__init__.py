from .calibration import (adaptive_ece, brier, classwise_ece, ece, mce, nll,
                          reliability_bins)
from .coco_matching import CocoVerdicts, judge_detections
from .detection_calibration import (detection_calibration_errors,
                                    detection_reliability_diagrams, iou_key)
from .judged_detections import JudgedDetections, judge_predictions, load_coco
from .localisation_aware import laece, lrp
from .posthoc_calibration import (CALIBRATORS, TEMPERATURE_OBJECTIVES,
                                  IsotonicCalibrator, PlattCalibrator,
                                  ScoreCalibrator, TemperatureCalibrator,
                                  build_calibrator, fit_temperature_grid,
                                  fit_temperature_nll, temper_scores)
from .reliability_diagram import plot_reliability_diagram

__all__ = [
    'ece', 'adaptive_ece', 'mce', 'classwise_ece', 'nll', 'brier',
    'reliability_bins', 'CocoVerdicts', 'judge_detections', 'laece', 'lrp',
    'plot_reliability_diagram', 'temper_scores', 'fit_temperature_grid',
    'fit_temperature_nll', 'TEMPERATURE_OBJECTIVES', 'ScoreCalibrator',
    'TemperatureCalibrator', 'PlattCalibrator', 'IsotonicCalibrator',
    'CALIBRATORS', 'build_calibrator', 'JudgedDetections', 'judge_predictions',
    'load_coco', 'detection_calibration_errors',
    'detection_reliability_diagrams', 'iou_key'
]

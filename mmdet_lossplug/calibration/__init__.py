"""Post-hoc calibrators of detection scores: fitted to judged validation
detections (``fit``), applied to a detector's scores at test time
(``apply``, ``DetectionScoreCalibrationHook``), stored as plain dicts
(``to_dict`` / ``build_calibrator``)."""
from .calibrators import (CALIBRATORS, IsotonicCalibrator, PlattCalibrator,
                          ScoreCalibrator, TemperatureCalibrator,
                          build_calibrator)
from .fitting import (TEMPERATURE_GRID, TEMPERATURE_OBJECTIVES,
                      fit_logit_affine, fit_temperature_grid,
                      fit_temperature_nll, temper_scores)

__all__ = [
    'ScoreCalibrator', 'TemperatureCalibrator', 'PlattCalibrator',
    'IsotonicCalibrator', 'CALIBRATORS', 'build_calibrator', 'temper_scores',
    'fit_temperature_grid', 'fit_temperature_nll', 'fit_logit_affine',
    'TEMPERATURE_GRID', 'TEMPERATURE_OBJECTIVES'
]

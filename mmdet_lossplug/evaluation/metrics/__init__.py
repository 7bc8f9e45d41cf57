from .detection_calibration_metric import DetectionCalibrationMetric

__all__ = ['DetectionCalibrationMetric']

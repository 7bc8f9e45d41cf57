from .calibrate_predictions import (PredictionEvaluation,
                                    calibrate_predictions, format_report,
                                    reported_iou_thrs)

__all__ = [
    'calibrate_predictions', 'format_report', 'reported_iou_thrs',
    'PredictionEvaluation'
]

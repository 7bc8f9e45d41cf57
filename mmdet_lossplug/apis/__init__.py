from .calibrate_predictions import (calibrate_predictions, format_report,
                                    reported_iou_thrs)

__all__ = ['calibrate_predictions', 'format_report', 'reported_iou_thrs']

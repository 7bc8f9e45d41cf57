# As mmdet.evaluation: pure functions (functional/), the adapters that judge
# detections with COCOeval, the detection calibration errors composed from
# them, and the metrics registered with mmdet's METRICS.
from .coco_verdicts import CocoVerdicts, coco_verdicts
from .detection_calibration import (LAECE_IOU_THR, LAECE_N_BINS,
                                    check_iou_thresholds,
                                    detection_calibration_errors,
                                    detection_reliability_diagrams, iou_key,
                                    log_detection_calibration_errors,
                                    write_diagrams)
from .functional import *  # noqa: F401,F403
from .judged_detections import (JudgedDetections, image_arrays,
                                judge_image_arrays, judge_predictions,
                                load_coco)
from .metrics import *  # noqa: F401,F403
from .reliability_diagram import plot_reliability_diagram

__all__ = [
    'CocoVerdicts', 'coco_verdicts', 'JudgedDetections', 'image_arrays',
    'judge_image_arrays', 'judge_predictions', 'load_coco',
    'detection_calibration_errors', 'log_detection_calibration_errors',
    'detection_reliability_diagrams', 'write_diagrams', 'iou_key',
    'check_iou_thresholds', 'LAECE_IOU_THR', 'LAECE_N_BINS',
    'plot_reliability_diagram'
]
